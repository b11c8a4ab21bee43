/**
 * React.lazy for a page's chunk that survives a failed load. Chromium keeps a dynamic import that
 * failed (a dropped connection, the machine's network changing, a proxy's 502) as failed for the
 * page's life, so importing it again fails at once without asking the server: the retry imports
 * the same address with a query that makes it a new module, up to three attempts, a second apart.
 * What still fails reaches the page's error boundary (page-boundary.tsx), which offers a reload.
 */
import { lazy, type ComponentType, type LazyExoticComponent } from 'react';

const attempts = 3;
const pauseMs = 1000;

/** The address a failed dynamic import names in its message (Chromium's and Firefox's words). */
export function failedChunkUrl(error: unknown): string | null {
  const message = error instanceof Error ? error.message : String(error);
  if (!/dynamically imported module|module script failed|error loading dynamically/i.test(message))
    return null;
  return /(https?:\/\/[^\s'"]+)/.exec(message)?.[1] ?? null;
}

/** The module `load` imports, importing its address again (made new) when the first load failed. */
export async function importChunk<M>(load: () => Promise<M>): Promise<M> {
  try {
    return await load();
  } catch (first) {
    const url = failedChunkUrl(first);
    if (!url) throw first;
    let failure: unknown = first;
    for (let attempt = 2; attempt <= attempts; attempt += 1) {
      await new Promise((resolve) => setTimeout(resolve, pauseMs));
      try {
        const again = `${url}${url.includes('?') ? '&' : '?'}attempt=${attempt}`;
        return (await import(/* @vite-ignore */ again)) as M;
      } catch (error) {
        failure = error;
      }
    }
    throw failure;
  }
}

/** A lazily loaded component: the one `pick` takes from the module `load` imports (loaded again when it failed). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- React.lazy's own bound
export function lazyChunk<M, C extends ComponentType<any>>(
  load: () => Promise<M>,
  pick: (module: M) => C,
): LazyExoticComponent<C> {
  return lazy(async () => ({ default: pick(await importChunk(load)) }));
}
