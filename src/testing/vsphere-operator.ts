/**
 * "Another user" of a vCenter: an independent SOAP session, outside Zenith's
 * driver, that changes things behind Zenith's back (power, placement, names),
 * as DRS or an administrator in the vSphere client would.
 */
import { containerViewSpec, PropertyCollector } from '../protocols/vim/property-collector.js';
import { asTask, waitForTask } from '../protocols/vim/tasks.js';
import { VimClient } from '../protocols/vim/vim-client.js';
import { MoRef, str } from '../protocols/vim/vim-values.js';
import type { VsphereSimulator } from './vsphere-simulator.js';

export class VsphereOperator {
  private constructor(readonly client: VimClient) {}

  static async connect(sim: VsphereSimulator): Promise<VsphereOperator> {
    return new VsphereOperator(
      await VimClient.connect({
        url: sim.url,
        username: 'operator',
        password: 'operator-password',
        tls: { thumbprint: sim.thumbprint },
        keepAliveMs: 0,
      }),
    );
  }

  /** Objects of a type by name → reference. */
  async named(type: string): Promise<Map<string, MoRef>> {
    const view = (await this.client.invoke('CreateContainerView', this.client.content.viewManager, {
      container: this.client.content.rootFolder,
      type: [type],
      recursive: true,
    })) as MoRef;
    const found = await new PropertyCollector(this.client).retrieveAll([
      containerViewSpec(view, [{ type, pathSet: ['name'] }]),
    ]);
    await this.client.invoke('DestroyView', view);
    return new Map(found.map((o) => [str(o.props.get('name')) ?? o.obj.value, o.obj]));
  }

  async vm(name: string): Promise<MoRef> {
    const found = (await this.named('VirtualMachine')).get(name);
    if (!found) throw new Error(`no VM ${name}`);
    return found;
  }

  async task(
    method: string,
    self: MoRef,
    args: Parameters<VimClient['invoke']>[2] = {},
  ): Promise<void> {
    await waitForTask(this.client, asTask(await this.client.invoke(method, self, args), method));
  }

  powerOff(vm: MoRef): Promise<void> {
    return this.task('PowerOffVM_Task', vm);
  }

  powerOn(vm: MoRef): Promise<void> {
    return this.task('PowerOnVM_Task', vm);
  }

  relocate(vm: MoRef, host: MoRef): Promise<void> {
    return this.task('RelocateVM_Task', vm, { spec: { host } });
  }

  rename(vm: MoRef, name: string): Promise<void> {
    return this.task('Rename_Task', vm, { newName: name });
  }

  close(): Promise<void> {
    return this.client.close();
  }
}
