/**
 * Keeps a panel's data live: loads it now, and again on every event of the stream that
 * `relevant` keeps (a task that ended, …), for as long as the panel shows.
 */
import { useEffect, useRef } from 'react';
import type { EventStream } from '../api/event-stream.ts';
import type { ZenithEvent } from '../api/types.ts';

export function useLiveLoad(
  events: EventStream,
  load: () => Promise<void>,
  relevant: (event: ZenithEvent) => boolean,
): void {
  // The latest test, without subscribing again each render.
  const relevantNow = useRef(relevant);
  useEffect(() => {
    relevantNow.current = relevant;
  });
  useEffect(() => {
    void load();
    return events.subscribe((event) => {
      if (relevantNow.current(event)) void load();
    });
  }, [events, load]);
}
