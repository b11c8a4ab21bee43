/**
 * The VM page as its own chunk (it carries the terminal emulator): loaded when a VM is first
 * opened, so the first load holds only the shell, the login and the inventory.
 */
import { Loader } from '@mantine/core';
import { lazy, Suspense, type ComponentProps } from 'react';

const VmPageChunk = lazy(async () => ({
  default: (await import('./pages/vm-page.tsx')).VmPage,
}));

export function VmPage(props: ComponentProps<typeof VmPageChunk>) {
  return (
    <Suspense fallback={<Loader aria-label="Loading the VM page" />}>
      <VmPageChunk {...props} />
    </Suspense>
  );
}
