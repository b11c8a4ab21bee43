/**
 * The VM's serial console in a terminal emulator: a single-use ticket from the API, then the
 * console's bytes both ways over the WebSocket the ticket names.
 */
import { Box } from '@mantine/core';
import { Terminal } from '@xterm/xterm';
import { useEffect, useRef, useState } from 'react';
import { ApiError } from '../api/api-error.ts';
import { consoleSocket, type ApiClient } from '../api/client.ts';
import { ErrorAlert } from './error-alert.tsx';

export function SerialConsole(props: { vmId: string; client: ApiClient }) {
  const { vmId, client } = props;
  const host = useRef<HTMLDivElement>(null);
  const [status, setStatus] = useState('connecting');
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    const element = host.current;
    if (!element) return;
    const terminal = new Terminal({ convertEol: true, rows: 20, cols: 100, scrollback: 2000 });
    terminal.open(element);
    let socket: WebSocket | null = null;
    let closed = false;
    const encoder = new TextEncoder();
    const input = terminal.onData((data) => {
      if (socket?.readyState === WebSocket.OPEN) socket.send(encoder.encode(data));
    });
    client
      .consoleTicket(vmId, 'serial')
      .then((ticket) => {
        if (closed) return;
        socket = consoleSocket(ticket);
        socket.binaryType = 'arraybuffer';
        socket.onopen = () => {
          setStatus('connected');
          terminal.focus();
        };
        socket.onmessage = (message: MessageEvent<ArrayBuffer | string>) =>
          terminal.write(
            typeof message.data === 'string' ? message.data : new Uint8Array(message.data),
          );
        socket.onclose = (event) => {
          if (closed) return;
          setStatus('closed');
          // 4xxx: the server's coded refusal ("ZEN_…: message") in the reason.
          if (event.code >= 4000) setError(event.reason);
        };
      })
      .catch((failure: unknown) => {
        if (closed) return;
        setStatus('closed');
        setError(failure instanceof ApiError ? failure.reason : String(failure));
      });
    return () => {
      closed = true;
      input.dispose();
      socket?.close(1000, 'console closed by the user');
      terminal.dispose();
    };
  }, [client, vmId]);

  return (
    <div>
      <ErrorAlert title="The console closed" mb="xs" error={error} />
      <Box
        ref={host}
        role="region"
        aria-label="Serial console"
        aria-busy={status === 'connecting'}
        data-status={status}
        style={{ background: '#000', padding: 4, borderRadius: 4 }}
      />
    </div>
  );
}
