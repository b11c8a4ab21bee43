/**
 * A deliberately broken SOAP peer for the VIM client's failure tests: it
 * answers RetrieveServiceContent and Login properly, then whatever the test
 * scripts for the other methods (garbage, truncated replies, hangs, resets).
 * The real peer for everything else is the vSphere simulator.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export type FakeReply = (
  request: { method: string; body: string },
  response: ServerResponse,
  socket: Socket,
) => void;

export interface FakeVimServer {
  url: string;
  /** Methods called, in order. */
  calls: string[];
  /** What to answer for a method (default: a well-formed empty reply). */
  script(method: string, reply: FakeReply): void;
  close(): Promise<void>;
}

const envelope = (body: string) =>
  `<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>${body}</soapenv:Body></soapenv:Envelope>`;

export function soapReply(method: string, inner = ''): string {
  return envelope(`<${method}Response xmlns="urn:vim25">${inner}</${method}Response>`);
}

const serviceContent = soapReply(
  'RetrieveServiceContent',
  '<returnval><rootFolder type="Folder">group-d1</rootFolder><propertyCollector type="PropertyCollector">propertyCollector</propertyCollector><viewManager type="ViewManager">ViewManager</viewManager><about><name>Fake</name><fullName>Fake vCenter</fullName><apiType>VirtualCenter</apiType><apiVersion>6.5</apiVersion><instanceUuid>fake</instanceUuid></about><sessionManager type="SessionManager">SessionManager</sessionManager></returnval>',
);

export async function startFakeVimServer(): Promise<FakeVimServer> {
  const scripts = new Map<string, FakeReply>();
  const calls: string[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((request: IncomingMessage, response: ServerResponse) => {
    let body = '';
    request.setEncoding('utf8');
    request.on('data', (chunk: string) => (body += chunk));
    request.on('end', () => {
      const start = body.indexOf('<soapenv:Body><') + '<soapenv:Body><'.length;
      const method = body.slice(start, body.indexOf(' ', start));
      calls.push(method);
      const scripted = scripts.get(method);
      if (scripted) return scripted({ method, body }, response, request.socket);
      response.setHeader('content-type', 'text/xml; charset=utf-8');
      if (method === 'RetrieveServiceContent') return response.end(serviceContent);
      if (method === 'Login') {
        response.setHeader('set-cookie', 'vmware_soap_session="fake-session"; Path=/; HttpOnly');
        return response.end(
          soapReply(
            'Login',
            '<returnval><key>fake-session</key><userName>u</userName></returnval>',
          ),
        );
      }
      response.end(soapReply(method));
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/sdk`,
    calls,
    script: (method, reply) => scripts.set(method, reply),
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
