/** Reads the tiny test guest's serial console through the control plane (ticket, then WebSocket). */
import WebSocket from 'ws';
import type { TestServer } from './control-plane.js';

/** Answers the numbers of the first `count` `tick N` lines seen on the VM's console. */
export async function consoleTicks(
  s: TestServer,
  token: string,
  vmId: string,
  count: number,
  timeoutMs = 30_000,
): Promise<number[]> {
  const issued = await s.request('POST', `/vms/${vmId}/console-tickets`, {
    token,
    body: { kind: 'serial' },
  });
  const path = (issued.body as { path?: string } | undefined)?.path;
  if (issued.status !== 201 || !path)
    throw new Error(`no console ticket: ${issued.status} ${JSON.stringify(issued.body)}`);
  return new Promise((resolve, reject) => {
    let text = '';
    const socket = new WebSocket(`${s.baseUrl.replace('http', 'ws')}${path}`);
    const timer = setTimeout(() => {
      socket.close();
      reject(
        new Error(
          `fewer than ${count} ticks on the console within ${timeoutMs} ms: ${text.slice(-300)}`,
        ),
      );
    }, timeoutMs);
    socket.on('message', (data: Buffer) => {
      text += data.toString();
      const seen = [...text.matchAll(/tick (\d+)\r?\n/g)].map((m) => Number(m[1]));
      if (seen.length >= count) {
        clearTimeout(timer);
        socket.close();
        resolve(seen.slice(0, count));
      }
    });
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}
