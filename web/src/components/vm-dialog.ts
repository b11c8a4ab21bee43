import type { ApiClient } from '../api/client.ts';
import type { EventStream } from '../api/event-stream.ts';
import type { ManagedObject } from '../api/types.ts';

/** What every dialog on a VM is given. */
export interface VmDialogProps {
  vm: ManagedObject;
  client: ApiClient;
  events: EventStream;
  onClose: () => void;
}
