/**
 * A TCP proxy on 127.0.0.1 that holds every chunk `delayMs` before passing it on, in each
 * direction: a link with that much more latency one way (2 × delayMs more per round trip). The
 * kernels of these machines have no netem (`tc qdisc … netem` answers "Specified qdisc kind is
 * unknown"), so the delay is added here. Chunks keep their order (timers of one duration fire in
 * the order they were set); a delay of 0 passes them on at the next turn of the event loop, which
 * measures what the proxy itself costs.
 */
import { connect, createServer, type Socket } from 'node:net';

export interface DelayProxy {
  /** The port it listens on, on 127.0.0.1. */
  port: number;
  close(): Promise<void>;
}

export async function startDelayProxy(
  target: { host: string; port: number },
  delayMs: number,
): Promise<DelayProxy> {
  const sockets = new Set<Socket>();
  const later = (work: () => void) =>
    delayMs > 0 ? void setTimeout(work, delayMs) : void setImmediate(work);
  const pipe = (from: Socket, to: Socket) => {
    from.on('data', (chunk: Buffer) => later(() => to.write(chunk)));
    from.on('end', () => later(() => to.end()));
    from.on('close', () => later(() => to.destroy()));
    from.on('error', () => undefined);
  };
  const server = createServer((client) => {
    client.setNoDelay(true);
    const upstream = connect({ host: target.host, port: target.port });
    upstream.setNoDelay(true);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
    }
    pipe(client, upstream);
    pipe(upstream, client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : 0,
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
