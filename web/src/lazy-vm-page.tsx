/**
 * The VM page as its own chunk (it carries the terminal emulator): loaded when a VM is first
 * opened, so the first load holds only the shell, the login and the inventory.
 */
import { Loader } from '@mantine/core';
import { Suspense, type ComponentProps } from 'react';
import { lazyChunk } from './components/lazy-chunk.ts';

const VmPageChunk = lazyChunk(
  () => import('./pages/vm-page.tsx'),
  (m) => m.VmPage,
);

export function VmPage(props: ComponentProps<typeof VmPageChunk>) {
  return (
    <Suspense fallback={<Loader aria-label="Loading the VM page" />}>
      <VmPageChunk {...props} />
    </Suspense>
  );
}
