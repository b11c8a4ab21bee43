import type { Duplex } from 'node:stream';
import { isZenithError, ZenithError } from '../core/errors.js';
import type { FromAgent, ToAgent } from '../protocols/agent-channel/messages.js';
import type { QemuDriver } from '../hypervisors/qemu/qemu-driver.js';

/** The consoles the control plane opened through this agent: local sockets relayed as base64 messages. */
export class ConsoleRelays {
  readonly #streams = new Map<number, Duplex>();

  constructor(private readonly driver: QemuDriver) {}

  /** Opens a VM's console and relays it as `stream`; a failure closes the stream with its code. */
  open(
    message: Extract<ToAgent, { type: 'console-open' }>,
    send: (message: FromAgent) => void,
  ): void {
    this.driver
      .openConsole(message.vmId, message.kind)
      .then((stream) => {
        this.#streams.set(message.stream, stream);
        stream.on('data', (chunk: Buffer) =>
          send({ type: 'console-data', stream: message.stream, data: chunk.toString('base64') }),
        );
        stream.on('close', () => {
          this.#streams.delete(message.stream);
          send({ type: 'console-close', stream: message.stream });
        });
        stream.on('error', () => stream.destroy());
        send({ type: 'console-opened', stream: message.stream });
      })
      .catch((error: unknown) => {
        const coded = isZenithError(error)
          ? error
          : new ZenithError('ZEN_DRIVER_ERROR', (error as Error).message);
        send({
          type: 'console-close',
          stream: message.stream,
          error: { code: coded.code, message: coded.message },
        });
      });
  }

  write(message: Extract<ToAgent, { type: 'console-data' }>): void {
    this.#streams.get(message.stream)?.write(Buffer.from(message.data, 'base64'));
  }

  close(message: Extract<ToAgent, { type: 'console-close' }>): void {
    this.#streams.get(message.stream)?.destroy();
    this.#streams.delete(message.stream);
  }

  closeAll(): void {
    for (const stream of this.#streams.values()) stream.destroy();
    this.#streams.clear();
  }
}
