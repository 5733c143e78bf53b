/**
 * The image model shared by the shim's parts: OCI image-spec documents as
 * they are stored, and the record the store keeps per image. Pulling,
 * loading, unpacking and the container commands all speak these types.
 *
 * Store layout under the shim's root (default /var/lib/tsrun):
 *   blobs/sha256/<hex>        content-addressed blobs, verified before they appear (renamed in)
 *   images/index.json         ImageRecord[]: names and tags → manifest and config digests
 *   snapshots/<chain-hex>/fs  each layer unpacked once, keyed by its chain id
 *   containers/<cid>/         a container's files (container.json names its imageId), its rootfs
 *                             mount point and overlay upper/work dirs
 *   volumes/<name>/_data      named volumes
 *   network/                  address leases and port-forward records
 *   runtime/                  tsrun's --root for the shim's containers
 */

export const MEDIA = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  dockerForeignLayerGzip: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
} as const;

export interface Descriptor {
  mediaType: string;
  digest: string; // "sha256:<hex>"
  size: number;
  platform?: { architecture: string; os: string; variant?: string; 'os.version'?: string };
  annotations?: Record<string, string>;
}

export interface Manifest {
  schemaVersion: 2;
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

export interface ImageIndex {
  schemaVersion: 2;
  mediaType?: string;
  manifests: Descriptor[];
}

/** The `config` object of an image config (what `docker inspect` shows as Config). */
export interface ImageRunConfig {
  User?: string;
  ExposedPorts?: Record<string, object>;
  Env?: string[];
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  Volumes?: Record<string, object>;
  WorkingDir?: string;
  Labels?: Record<string, string> | null;
  StopSignal?: string;
}

/** The image config blob (OCI image-spec config.json). */
export interface ImageConfig {
  created?: string;
  author?: string;
  architecture: string;
  os: string;
  variant?: string;
  config?: ImageRunConfig;
  rootfs: { type: 'layers'; diff_ids: string[] };
  history?: { created?: string; created_by?: string; empty_layer?: boolean; comment?: string }[];
}

/** One layer as the store knows it: the blob and its uncompressed content. */
export interface LayerRecord {
  digest: string; // of the blob as stored (compressed or not)
  mediaType: string;
  size: number; // of the blob
  diffId: string; // sha256 of the uncompressed tar (from the config's rootfs.diff_ids)
  chainId: string; // OCI chain id: the snapshot key
}

/** What images/index.json keeps per image. The id is the config digest, as Docker's. */
export interface ImageRecord {
  id: string; // "sha256:<hex>" of the config blob
  names: string[]; // normalized references, e.g. "docker.io/library/busybox:latest"
  manifestDigest: string;
  manifestMediaType: string;
  /** digests by which it was pulled: "docker.io/library/busybox@sha256:..." */
  repoDigests: string[];
  layers: LayerRecord[];
  /** sum of the layer blobs' sizes */
  size: number;
  /** when it entered this store (ISO 8601) */
  added: string;
}
