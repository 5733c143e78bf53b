// A userspace proxy as a Node monitor would run one (bench/portfwd.sh's
// "node" path): net.Server, one upstream connection per client, piped both
// ways. Usage: node bench/portfwd-proxy.mjs LISTEN_PORT HOST PORT
import net from 'node:net';

const [listen, host, port] = process.argv.slice(2);
net
  .createServer({ noDelay: true }, (c) => {
    const u = net.connect({ host, port: Number(port), noDelay: true });
    c.pipe(u);
    u.pipe(c);
    const end = () => {
      c.destroy();
      u.destroy();
    };
    c.on('error', end);
    u.on('error', end);
  })
  .listen(Number(listen), '0.0.0.0');
