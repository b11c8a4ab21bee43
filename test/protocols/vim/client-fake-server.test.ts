import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { PropertyCollector, objectsSpec } from '../../../src/protocols/vim/property-collector.js';
import type { SoapTransport, TransportReply } from '../../../src/protocols/vim/http-transport.js';
import { VimClient } from '../../../src/protocols/vim/vim-client.js';
import { moRef } from '../../../src/protocols/vim/vim-values.js';
import { parseXml } from '../../../src/protocols/vim/xml-tree.js';
import {
  soapReply,
  startFakeVimServer,
  type FakeVimServer,
} from '../../../src/testing/fake-vim-server.js';

describe('the VIM client against a peer that sends broken replies', () => {
  let server: FakeVimServer;
  let client: VimClient;
  before(async () => {
    server = await startFakeVimServer();
    client = await VimClient.connect({
      url: server.url,
      username: 'u',
      password: 'p',
      timeoutMs: 2000,
    });
  });
  after(async () => {
    await client.close();
    await server.close();
  });

  const stillWorks = async () => {
    assert.equal(await client.invoke('CurrentTime', client.serviceInstance), undefined);
  };

  test('garbage bytes are VIM_PROTOCOL_ERROR, and the next call works', async () => {
    server.script('CurrentTime', (_r, response) => {
      response.setHeader('content-type', 'text/xml');
      response.end(Buffer.from([0x3c, 0xff, 0xfe, 0x00, 0x41, 0x3e, 0x0a]));
    });
    await assert.rejects(client.invoke('CurrentTime', client.serviceInstance), {
      code: 'VIM_PROTOCOL_ERROR',
    });
    server.script('CurrentTime', (r, response) => response.end(soapReply(r.method)));
    await stillWorks();
  });

  test('a reply cut off mid-element (the connection closes) is VIM_PROTOCOL_ERROR, not a hang', async () => {
    const full = soapReply('CurrentTime', '<returnval>2026-01-01T00:00:00Z</returnval>');
    server.script('CurrentTime', (_r, response, socket) => {
      response.writeHead(200, {
        'content-type': 'text/xml',
        'content-length': String(full.length),
      });
      response.write(full.slice(0, 120), () => socket.destroy());
    });
    await assert.rejects(client.invoke('CurrentTime', client.serviceInstance), {
      code: 'VIM_PROTOCOL_ERROR',
    });
    server.script('CurrentTime', (_r, response) => {
      response.setHeader('content-type', 'text/xml');
      response.end(full.slice(0, full.length - 30));
    });
    await assert.rejects(client.invoke('CurrentTime', client.serviceInstance), {
      code: 'VIM_PROTOCOL_ERROR',
    });
    server.script('CurrentTime', (r, response) => response.end(soapReply(r.method)));
    await stillWorks();
  });

  test('well-formed XML of the wrong shape, an HTML error page and an HTTP 503 are coded errors', async () => {
    server.script('CurrentTime', (_r, response) =>
      response.end('<?xml version="1.0"?><rss><channel/></rss>'),
    );
    await assert.rejects(client.invoke('CurrentTime', client.serviceInstance), {
      code: 'VIM_PROTOCOL_ERROR',
    });
    server.script('CurrentTime', (_r, response) => {
      response.writeHead(502, { 'content-type': 'text/html' });
      response.end('<html>bad gateway</html>');
    });
    await assert.rejects(
      client.invoke('CurrentTime', client.serviceInstance),
      (error: any) => error.code === 'VIM_CONNECT_FAILED' && error.details.status === 502,
    );
    server.script('CurrentTime', (_r, response) => {
      response.writeHead(503);
      response.end();
    });
    await assert.rejects(client.invoke('CurrentTime', client.serviceInstance), {
      code: 'VIM_CONNECT_FAILED',
    });
    server.script('CurrentTime', (r, response) => response.end(soapReply(r.method)));
    await stillWorks();
  });

  test('a peer that never finishes its reply fails the call with VIM_TIMEOUT', async () => {
    server.script('CurrentTime', (_r, response) => {
      response.writeHead(200, { 'content-type': 'text/xml' });
      response.write(
        '<?xml version="1.0"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">',
      );
    });
    await assert.rejects(client.invoke('CurrentTime', client.serviceInstance), {
      code: 'VIM_TIMEOUT',
    });
    server.script('CurrentTime', (r, response) => response.end(soapReply(r.method)));
    await stillWorks();
  });

  test('elements nested without end are refused before they exhaust memory', async () => {
    server.script('CurrentTime', (_r, response) => {
      response.setHeader('content-type', 'text/xml');
      response.end('<a>'.repeat(10_000));
    });
    await assert.rejects(client.invoke('CurrentTime', client.serviceInstance), {
      code: 'VIM_PROTOCOL_ERROR',
    });
  });

  test('a NotAuthenticated fault logs in again once; a second one is the error', async () => {
    let refusals = 0;
    server.script('CurrentTime', (_r, response) => {
      refusals++;
      response.writeHead(500, { 'content-type': 'text/xml' });
      response.end(
        '<?xml version="1.0"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>session gone</faultstring><detail><NotAuthenticatedFault xmlns="urn:vim25" xsi:type="NotAuthenticated"/></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>',
      );
    });
    const before = server.calls.length;
    await assert.rejects(client.invoke('CurrentTime', client.serviceInstance), {
      code: 'VIM_NOT_AUTHENTICATED',
    });
    assert.deepEqual(server.calls.slice(before), ['CurrentTime', 'Login', 'CurrentTime']);
    assert.equal(refusals, 2);
    server.script('CurrentTime', (r, response) => response.end(soapReply(r.method)));
    await stillWorks();
  });
});

test('RetrievePropertiesEx pages are followed with ContinueRetrievePropertiesEx until no token is left', async () => {
  // The simulator answers every object in one page, so the paging loop is checked over an injected transport.
  const page = (token: string | null, names: string[]) =>
    soapReply(
      token === null || token.startsWith('t')
        ? 'RetrievePropertiesEx'
        : 'ContinueRetrievePropertiesEx',
      `<returnval>${token && token !== 'first' ? `<token>${token}</token>` : ''}${names
        .map(
          (n) =>
            `<objects><obj type="VirtualMachine">${n}</obj><propSet><name>name</name><val xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="xsd:string" xmlns:xsd="http://www.w3.org/2001/XMLSchema">${n}</val></propSet></objects>`,
        )
        .join('')}</returnval>`,
    );
  const sent: string[] = [];
  const replies = [
    soapReply(
      'RetrieveServiceContent',
      '<returnval><rootFolder type="Folder">f</rootFolder><propertyCollector type="PropertyCollector">pc</propertyCollector><viewManager type="ViewManager">vm</viewManager><sessionManager type="SessionManager">sm</sessionManager></returnval>',
    ),
    soapReply('Login', '<returnval><key>k</key></returnval>'),
    page('t1', ['vm-1', 'vm-2']),
    page('c2', ['vm-3', 'vm-4']).replaceAll('<token>c2</token>', '<token>t2</token>'),
    page(null, ['vm-5']).replaceAll('RetrievePropertiesEx', 'ContinueRetrievePropertiesEx'),
  ];
  const transport: SoapTransport = {
    async post(body): Promise<TransportReply> {
      sent.push(body);
      const text = replies.shift()!;
      return { status: 200, setCookie: [], root: parseXml(text), bytes: text.length };
    },
    close() {},
  };
  const client = await VimClient.connect({
    url: 'https://unused.invalid/sdk',
    username: 'u',
    password: 'p',
    transport,
    keepAliveMs: 0,
  });
  const pages: string[][] = [];
  for await (const objects of new PropertyCollector(client).retrievePages(
    [
      objectsSpec(
        [moRef('VirtualMachine', 'vm-1')],
        [{ type: 'VirtualMachine', pathSet: ['name'] }],
      ),
    ],
    { maxObjects: 2 },
  ))
    pages.push(objects.map((o) => o.props.get('name') as string));
  assert.deepEqual(pages, [['vm-1', 'vm-2'], ['vm-3', 'vm-4'], ['vm-5']]);
  assert.match(sent[2]!, /<RetrievePropertiesEx .*<options><maxObjects>2<\/maxObjects><\/options>/);
  assert.match(sent[3]!, /<ContinueRetrievePropertiesEx .*<token>t1<\/token>/);
  assert.match(sent[4]!, /<ContinueRetrievePropertiesEx .*<token>t2<\/token>/);
  transport.close();
});
