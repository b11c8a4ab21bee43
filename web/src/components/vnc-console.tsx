/**
 * The VM's graphical console with noVNC: a single-use ticket of kind vnc from the API, then the
 * WebSocket it names carries the RFB protocol to the VM's VNC server, both ways.
 */
import { Box, Button, Group } from '@mantine/core';
import RFB from '@novnc/novnc';
import { useEffect, useRef, useState } from 'react';
import { consoleSocket, type ApiClient } from '../api/client.ts';
import { reasonOf } from '../api/follow-task.ts';
import { ErrorAlert } from './error-alert.tsx';

export function VncConsole(props: { vmId: string; client: ApiClient }) {
  const { vmId, client } = props;
  const host = useRef<HTMLDivElement>(null);
  const rfb = useRef<RFB | null>(null);
  const [status, setStatus] = useState('connecting');
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    const element = host.current;
    if (!element) return;
    let closed = false;
    client
      .consoleTicket(vmId, 'vnc')
      .then((ticket) => {
        if (closed) return;
        // A WebSocket of our own: its close code and reason carry the server's coded refusal.
        const socket = consoleSocket(ticket);
        socket.addEventListener('close', (event) => {
          if (!closed && event.code >= 4000) setError(event.reason);
        });
        const session = new RFB(element, socket);
        session.scaleViewport = true;
        session.background = '#000';
        session.addEventListener('connect', () => setStatus('connected'));
        session.addEventListener('disconnect', () => {
          if (!closed) setStatus('closed');
        });
        session.addEventListener('securityfailure', () => {
          if (!closed) setError('the VNC server refused the connection');
        });
        rfb.current = session;
      })
      .catch((failure: unknown) => {
        if (closed) return;
        setStatus('closed');
        setError(reasonOf(failure));
      });
    return () => {
      closed = true;
      rfb.current?.disconnect();
      rfb.current = null;
    };
  }, [client, vmId]);

  return (
    <div>
      <ErrorAlert title="The graphical console closed" mb="xs" error={error} />
      <Group mb="xs">
        <Button
          size="xs"
          variant="default"
          disabled={status !== 'connected'}
          onClick={() => rfb.current?.sendCtrlAltDel()}
        >
          Send Ctrl+Alt+Del
        </Button>
      </Group>
      <Box
        ref={host}
        role="region"
        aria-label="Graphical console"
        aria-busy={status === 'connecting'}
        data-status={status}
        style={{ background: '#000', height: 480, borderRadius: 4, overflow: 'hidden' }}
      />
    </div>
  );
}
