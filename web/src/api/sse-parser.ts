/**
 * Server-Sent Events framing, as a pure codec: feed it text as it arrives (split anywhere), it
 * answers the complete events. Comments (keep-alives) are dropped.
 */
export interface SseMessage {
  id: string | null;
  event: string;
  data: string;
}

export class SseParser {
  #buffer = '';
  /** A chunk's last '\r' waits for the next one: it may be half of a '\r\n'. */
  #carriage = '';

  push(chunk: string): SseMessage[] {
    let text = this.#carriage + chunk;
    this.#carriage = text.endsWith('\r') ? '\r' : '';
    if (this.#carriage) text = text.slice(0, -1);
    this.#buffer += text.replace(/\r\n?/g, '\n');
    const messages: SseMessage[] = [];
    let end: number;
    while ((end = this.#buffer.indexOf('\n\n')) >= 0) {
      const block = this.#buffer.slice(0, end);
      this.#buffer = this.#buffer.slice(end + 2);
      const message: SseMessage = { id: null, event: 'message', data: '' };
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line === '' || line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'id') message.id = value;
        else if (field === 'event') message.event = value;
        else if (field === 'data') data.push(value);
      }
      if (data.length > 0) messages.push({ ...message, data: data.join('\n') });
    }
    return messages;
  }
}
