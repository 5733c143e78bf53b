/** Link naming: veth names fit IFNAMSIZ, MACs follow the address, a bridge address gives its subnet. */
import t from 'tap';
import { formatSubnet } from '../../../src/shim/network/ipam.js';
import { hostVethName, macFor, subnetOfAddress } from '../../../src/shim/network/links.js';

t.test('host veth names: short, stable, distinct', async (t) => {
  const id = 'f'.repeat(64);
  t.match(hostVethName(id), /^tsv[0-9a-f]{10}$/);
  t.ok(hostVethName(id).length <= 15, 'fits IFNAMSIZ (15 + NUL)');
  t.equal(hostVethName(id), hostVethName(id));
  t.not(hostVethName('a'), hostVethName('b'));
});

t.test("MACs: Docker's 02:42 prefix and the address bytes", async (t) => {
  t.equal(macFor('172.31.0.2'), '02:42:ac:1f:00:02');
  t.equal(macFor('10.200.255.254'), '02:42:0a:c8:ff:fe');
});

t.test("a bridge's address gives its subnet", async (t) => {
  t.equal(formatSubnet(subnetOfAddress('172.31.0.1/16')), '172.31.0.0/16');
  t.equal(formatSubnet(subnetOfAddress('10.1.2.129/25')), '10.1.2.128/25');
});
