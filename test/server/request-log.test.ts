/** What the server log keeps of a request: never a credential carried in its URL. */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { loggedUrl } from '../../src/server/request-log.js';
import { startTestServer, type TestServer } from '../../src/testing/control-plane.js';
import { captureLogs } from '../../src/testing/log-capture.js';

describe('request lines in the server log', () => {
  const logs = captureLogs('info');
  let s: TestServer;
  let admin: string;
  before(async () => {
    s = await startTestServer({ logger: logs.logger });
    admin = await s.login();
  });
  after(async () => s.close());

  test('a console ticket in the WebSocket URL, a download ticket, and tokens in query strings, are redacted', async () => {
    const ticket = 'Tk7v0Qx3LmZp9RwA2sYc8NdE';
    const socket = new WebSocket(`${s.baseUrl.replace(/^http/, 'ws')}/api/v1/consoles/${ticket}`);
    const closed = await new Promise<number>((resolve) => {
      socket.once('close', (code) => resolve(code));
      socket.once('error', () => undefined);
    });
    assert.ok(closed >= 4000, `the unknown ticket is refused (${closed})`);
    await s.request('GET', `/consoles/${ticket}`);
    const download = await s.request('GET', `/downloads/${ticket}`);
    assert.equal(download.status, 401, 'an unknown download ticket is refused');
    await s.request('GET', '/vms?limit=5&token=query-secret-value&Password=x%20y', {
      token: admin,
    });
    const text = logs.text();
    assert.ok(!text.includes(ticket), 'the ticket is in no log line');
    assert.ok(!text.includes('query-secret-value'));
    const urls = logs
      .lines()
      .filter((line) => line.msg === 'incoming request')
      .map((line) => (line.req as { url: string }).url);
    assert.ok(urls.includes('/api/v1/consoles/[redacted]'), urls.join(' '));
    assert.ok(urls.includes('/api/v1/downloads/[redacted]'), urls.join(' '));
    assert.ok(urls.includes('/api/v1/vms?limit=5&token=[redacted]&Password=[redacted]'));
  });

  test('everything else of a URL is logged as it came', () => {
    assert.equal(loggedUrl('/api/v1/vms/web-1?filter=a%3Db'), '/api/v1/vms/web-1?filter=a%3Db');
    assert.equal(loggedUrl('/api/v1/consoles/abc/def'), '/api/v1/consoles/[redacted]/def');
    assert.equal(loggedUrl('/api/v1/x?%74oken=1&flag'), '/api/v1/x?%74oken=[redacted]&flag');
  });
});
