/** A host's capacity against what its VMs are given: vCPUs and memory, all VMs and running ones. */
import { Progress, SimpleGrid, Stack, Text } from '@mantine/core';
import type { ManagedObject } from '../api/types.ts';
import { formatBytes } from '../pages/inventory-page.tsx';

export interface Allocation {
  cpus: number;
  memoryBytes: number;
  runningCpus: number;
  runningMemoryBytes: number;
}

export function allocationOf(vms: ManagedObject[]): Allocation {
  const sum = { cpus: 0, memoryBytes: 0, runningCpus: 0, runningMemoryBytes: 0 };
  for (const vm of vms) {
    const cpus = typeof vm.facts['cpu.count'] === 'number' ? vm.facts['cpu.count'] : 0;
    const memory = typeof vm.facts['memory.bytes'] === 'number' ? vm.facts['memory.bytes'] : 0;
    sum.cpus += cpus;
    sum.memoryBytes += memory;
    if (vm.facts['power.state'] === 'running') {
      sum.runningCpus += cpus;
      sum.runningMemoryBytes += memory;
    }
  }
  return sum;
}

function Meter(props: {
  label: string;
  used: number;
  capacity: number;
  show: (n: number) => string;
}) {
  const { label, used, capacity, show } = props;
  const percent = capacity > 0 ? Math.round((used / capacity) * 100) : 0;
  return (
    <Stack gap={4}>
      <Text size="sm" fw={600}>
        {label}
      </Text>
      <Progress
        value={Math.min(100, percent)}
        color={percent > 100 ? 'red' : percent > 80 ? 'orange' : 'blue'}
        aria-label={label}
        size="lg"
      />
      <Text size="sm" c="dimmed">
        {capacity > 0
          ? `${show(used)} of ${show(capacity)} (${percent}%)`
          : `${show(used)}; capacity unknown`}
      </Text>
    </Stack>
  );
}

export function HostCapacity(props: { host: ManagedObject; allocation: Allocation }) {
  const { host, allocation } = props;
  const cores = typeof host.facts['cpu.cores'] === 'number' ? host.facts['cpu.cores'] : 0;
  const memory =
    typeof host.facts['memory.totalBytes'] === 'number' ? host.facts['memory.totalBytes'] : 0;
  const cpus = { capacity: cores, show: (n: number) => `${n} vCPU` };
  const bytes = { capacity: memory, show: formatBytes };
  const meters = [
    { label: 'vCPUs allocated (all VMs)', used: allocation.cpus, ...cpus },
    { label: 'Memory allocated (all VMs)', used: allocation.memoryBytes, ...bytes },
    { label: 'CPU load (running VMs)', used: allocation.runningCpus, ...cpus },
    { label: 'Memory load (running VMs)', used: allocation.runningMemoryBytes, ...bytes },
  ];
  return (
    <SimpleGrid cols={{ base: 1, md: 2 }} aria-label="Capacity and load">
      {meters.map((meter) => (
        <Meter key={meter.label} {...meter} />
      ))}
    </SimpleGrid>
  );
}
