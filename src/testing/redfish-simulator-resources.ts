/**
 * The documents of the Redfish service simulator (./redfish-simulator.ts):
 * one function per DMTF resource, built from a simulated machine's state. They
 * follow the DMTF schemas (ServiceRoot, ComputerSystem, Processor, Memory,
 * EthernetInterface, Storage, Drive, Manager, VirtualMedia, Chassis, Thermal,
 * Power, SessionService, EventService) closely enough for real clients
 * (python3-sushy, redfishtool) to read them.
 */
export type SimulatedPower = 'On' | 'Off';

export interface SimulatedMachineState {
  id: string;
  uuid: string;
  serial: string;
  macs: string[];
  power: SimulatedPower;
  boot: { enabled: 'Disabled' | 'Once' | 'Continuous'; target: string };
  indicatorLed: 'Lit' | 'Off' | 'Blinking';
  media: { inserted: boolean; image?: string };
  sensors: { temperatureC: number; fanRpm: number; watts: number };
}

export const resetTypes = [
  'On',
  'ForceOff',
  'GracefulShutdown',
  'GracefulRestart',
  'ForceRestart',
  'PowerCycle',
  'Nmi',
];
export const bootTargets = ['None', 'Pxe', 'Hdd', 'Cd', 'BiosSetup'];

type Doc = Record<string, unknown>;
const v1 = '/redfish/v1';
const link = (path: string) => ({ '@odata.id': path });
const collection = (path: string, type: string, name: string, members: string[]): Doc => ({
  '@odata.id': path,
  '@odata.type': `#${type}.${type}`,
  Name: name,
  'Members@odata.count': members.length,
  Members: members.map(link),
});

export function serviceRoot(uuid: string): Doc {
  return {
    '@odata.id': `${v1}/`,
    '@odata.type': '#ServiceRoot.v1_11_0.ServiceRoot',
    Id: 'RootService',
    Name: 'Zenith Redfish service simulator',
    RedfishVersion: '1.11.0',
    UUID: uuid,
    Vendor: 'Zenith (simulator)',
    Systems: link(`${v1}/Systems`),
    Managers: link(`${v1}/Managers`),
    Chassis: link(`${v1}/Chassis`),
    SessionService: link(`${v1}/SessionService`),
    EventService: link(`${v1}/EventService`),
    Links: { Sessions: link(`${v1}/SessionService/Sessions`) },
  };
}

export function systemsCollection(machines: SimulatedMachineState[]): Doc {
  return collection(
    `${v1}/Systems`,
    'ComputerSystemCollection',
    'Computer System Collection',
    machines.map((m) => `${v1}/Systems/${m.id}`),
  );
}

export function system(m: SimulatedMachineState): Doc {
  const path = `${v1}/Systems/${m.id}`;
  return {
    '@odata.id': path,
    '@odata.type': '#ComputerSystem.v1_13_0.ComputerSystem',
    Id: m.id,
    Name: `Simulated machine ${m.id}`,
    SystemType: 'Physical',
    Manufacturer: 'Zenith Simulated Hardware',
    Model: 'ZS-1000',
    SerialNumber: m.serial,
    UUID: m.uuid,
    BiosVersion: 'ZS-BIOS 2.4.1',
    PowerState: m.power,
    IndicatorLED: m.indicatorLed,
    LocationIndicatorActive: m.indicatorLed !== 'Off',
    Status: { State: 'Enabled', Health: 'OK' },
    ProcessorSummary: { Count: 2, Model: 'Simulated Xeon 16-core', Status: { Health: 'OK' } },
    MemorySummary: { TotalSystemMemoryGiB: 64, Status: { Health: 'OK' } },
    Boot: {
      BootSourceOverrideEnabled: m.boot.enabled,
      BootSourceOverrideTarget: m.boot.target,
      'BootSourceOverrideTarget@Redfish.AllowableValues': bootTargets,
      BootSourceOverrideMode: 'UEFI',
    },
    Processors: link(`${path}/Processors`),
    Memory: link(`${path}/Memory`),
    EthernetInterfaces: link(`${path}/EthernetInterfaces`),
    Storage: link(`${path}/Storage`),
    Links: {
      Chassis: [link(`${v1}/Chassis/${m.id}`)],
      ManagedBy: [link(`${v1}/Managers/${m.id}`)],
    },
    Actions: {
      '#ComputerSystem.Reset': {
        target: `${path}/Actions/ComputerSystem.Reset`,
        'ResetType@Redfish.AllowableValues': resetTypes,
      },
    },
  };
}

/** The members of a system's sub-collections, by collection name. */
export function systemParts(m: SimulatedMachineState): Record<string, Doc[]> {
  const path = `${v1}/Systems/${m.id}`;
  return {
    Processors: [1, 2].map((n) => ({
      '@odata.id': `${path}/Processors/CPU${n}`,
      '@odata.type': '#Processor.v1_10_0.Processor',
      Id: `CPU${n}`,
      Name: `Processor ${n}`,
      Socket: `CPU ${n}`,
      ProcessorType: 'CPU',
      Manufacturer: 'Intel(R) Corporation',
      Model: 'Simulated Xeon 16-core',
      TotalCores: 16,
      TotalThreads: 32,
      Status: { State: 'Enabled', Health: 'OK' },
    })),
    Memory: [1, 2, 3, 4].map((n) => ({
      '@odata.id': `${path}/Memory/DIMM${n}`,
      '@odata.type': '#Memory.v1_10_0.Memory',
      Id: `DIMM${n}`,
      Name: `DIMM ${n}`,
      CapacityMiB: 16384,
      MemoryDeviceType: 'DDR4',
      Status: { State: 'Enabled', Health: 'OK' },
    })),
    EthernetInterfaces: m.macs.map((mac, n) => ({
      '@odata.id': `${path}/EthernetInterfaces/NIC${n + 1}`,
      '@odata.type': '#EthernetInterface.v1_6_0.EthernetInterface',
      Id: `NIC${n + 1}`,
      Name: `Ethernet interface ${n + 1}`,
      MACAddress: mac,
      PermanentMACAddress: mac,
      SpeedMbps: 25000,
      LinkStatus: 'LinkUp',
      Status: { State: 'Enabled', Health: 'OK' },
    })),
    Storage: [
      {
        '@odata.id': `${path}/Storage/1`,
        '@odata.type': '#Storage.v1_9_0.Storage',
        Id: '1',
        Name: 'Local storage',
        Drives: [link(`${path}/Storage/1/Drives/Disk1`), link(`${path}/Storage/1/Drives/Disk2`)],
        Status: { State: 'Enabled', Health: 'OK' },
      },
    ],
  };
}

export function drive(m: SimulatedMachineState, id: string): Doc | undefined {
  if (id !== 'Disk1' && id !== 'Disk2') return undefined;
  return {
    '@odata.id': `${v1}/Systems/${m.id}/Storage/1/Drives/${id}`,
    '@odata.type': '#Drive.v1_9_0.Drive',
    Id: id,
    Name: id === 'Disk1' ? 'Boot SSD' : 'Data SSD',
    Model: 'Simulated NVMe 960G',
    SerialNumber: `${m.serial}-${id}`,
    CapacityBytes: 960_197_124_096,
    MediaType: 'SSD',
    Protocol: 'NVMe',
    Status: { State: 'Enabled', Health: 'OK' },
  };
}

export function manager(m: SimulatedMachineState): Doc {
  const path = `${v1}/Managers/${m.id}`;
  return {
    '@odata.id': path,
    '@odata.type': '#Manager.v1_10_0.Manager',
    Id: m.id,
    Name: 'Simulated BMC',
    ManagerType: 'BMC',
    Model: 'ZS-BMC',
    FirmwareVersion: '3.1.7',
    PowerState: 'On',
    Status: { State: 'Enabled', Health: 'OK' },
    VirtualMedia: link(`${path}/VirtualMedia`),
    Links: { ManagerForServers: [link(`${v1}/Systems/${m.id}`)] },
  };
}

export function virtualMedia(m: SimulatedMachineState): Doc {
  const path = `${v1}/Managers/${m.id}/VirtualMedia/Cd`;
  return {
    '@odata.id': path,
    '@odata.type': '#VirtualMedia.v1_3_0.VirtualMedia',
    Id: 'Cd',
    Name: 'Virtual CD',
    MediaTypes: ['CD', 'DVD'],
    Image: m.media.image ?? null,
    Inserted: m.media.inserted,
    WriteProtected: true,
    ConnectedVia: m.media.inserted ? 'URI' : 'NotConnected',
    Actions: {
      '#VirtualMedia.InsertMedia': { target: `${path}/Actions/VirtualMedia.InsertMedia` },
      '#VirtualMedia.EjectMedia': { target: `${path}/Actions/VirtualMedia.EjectMedia` },
    },
  };
}

export function chassis(m: SimulatedMachineState, withSensors: boolean): Doc {
  const path = `${v1}/Chassis/${m.id}`;
  return {
    ...(withSensors ? { Sensors: link(`${path}/Sensors`) } : {}),
    '@odata.id': path,
    '@odata.type': '#Chassis.v1_11_0.Chassis',
    Id: m.id,
    Name: 'Simulated chassis',
    ChassisType: 'RackMount',
    Manufacturer: 'Zenith Simulated Hardware',
    Model: 'ZS-1000',
    SerialNumber: m.serial,
    PowerState: m.power,
    Status: { State: 'Enabled', Health: 'OK' },
    Thermal: link(`${path}/Thermal`),
    Power: link(`${path}/Power`),
    Links: { ComputerSystems: [link(`${v1}/Systems/${m.id}`)] },
  };
}

export function thermal(m: SimulatedMachineState): Doc {
  const path = `${v1}/Chassis/${m.id}/Thermal`;
  const on = m.power === 'On';
  return {
    '@odata.id': path,
    '@odata.type': '#Thermal.v1_6_0.Thermal',
    Id: 'Thermal',
    Name: 'Thermal',
    Temperatures: [
      {
        '@odata.id': `${path}#/Temperatures/0`,
        MemberId: '0',
        Name: 'CPU1 Temp',
        ReadingCelsius: m.sensors.temperatureC,
        PhysicalContext: 'CPU',
        Status: { State: 'Enabled', Health: 'OK' },
      },
    ],
    Fans: [
      {
        '@odata.id': `${path}#/Fans/0`,
        MemberId: '0',
        Name: 'Fan 1',
        Reading: on ? m.sensors.fanRpm : 0,
        ReadingUnits: 'RPM',
        Status: { State: 'Enabled', Health: 'OK' },
      },
    ],
  };
}

export function power(m: SimulatedMachineState): Doc {
  const path = `${v1}/Chassis/${m.id}/Power`;
  return {
    '@odata.id': path,
    '@odata.type': '#Power.v1_6_0.Power',
    Id: 'Power',
    Name: 'Power',
    PowerControl: [
      {
        '@odata.id': `${path}#/PowerControl/0`,
        MemberId: '0',
        Name: 'System Power Control',
        PowerConsumedWatts: m.power === 'On' ? m.sensors.watts : 0,
        Status: { State: 'Enabled', Health: 'OK' },
      },
    ],
  };
}

/** The newer Sensor resources (Redfish 2019.4 and later) of a chassis, the same readings as Thermal and Power. */
export function sensors(m: SimulatedMachineState): Doc[] {
  const path = `${v1}/Chassis/${m.id}/Sensors`;
  const on = m.power === 'On';
  const sensor = (id: string, name: string, type: string, reading: number, units: string) => ({
    '@odata.id': `${path}/${id}`,
    '@odata.type': '#Sensor.v1_2_0.Sensor',
    Id: id,
    Name: name,
    ReadingType: type,
    Reading: reading,
    ReadingUnits: units,
    Status: { State: 'Enabled', Health: 'OK' },
  });
  return [
    sensor('CPU1Temp', 'CPU1 Temp', 'Temperature', m.sensors.temperatureC, 'Cel'),
    sensor('Fan1', 'Fan 1', 'Rotational', on ? m.sensors.fanRpm : 0, 'RPM'),
    sensor('TotalPower', 'Total Power', 'Power', on ? m.sensors.watts : 0, 'W'),
  ];
}

export function sessionService(): Doc {
  return {
    '@odata.id': `${v1}/SessionService`,
    '@odata.type': '#SessionService.v1_1_8.SessionService',
    Id: 'SessionService',
    Name: 'Session Service',
    ServiceEnabled: true,
    SessionTimeout: 1800,
    Sessions: link(`${v1}/SessionService/Sessions`),
  };
}

export function session(id: string, user: string): Doc {
  return {
    '@odata.id': `${v1}/SessionService/Sessions/${id}`,
    '@odata.type': '#Session.v1_3_0.Session',
    Id: id,
    Name: 'User session',
    UserName: user,
  };
}

export function eventService(subscriptions: string[]): Doc {
  return {
    '@odata.id': `${v1}/EventService`,
    '@odata.type': '#EventService.v1_7_0.EventService',
    Id: 'EventService',
    Name: 'Event Service',
    ServiceEnabled: true,
    DeliveryRetryAttempts: 3,
    DeliveryRetryIntervalSeconds: 30,
    EventTypesForSubscription: ['StatusChange', 'ResourceUpdated', 'Alert'],
    Subscriptions: link(`${v1}/EventService/Subscriptions`),
    'Subscriptions@odata.count': subscriptions.length,
    Actions: {
      '#EventService.SubmitTestEvent': {
        target: `${v1}/EventService/Actions/EventService.SubmitTestEvent`,
        'EventType@Redfish.AllowableValues': ['StatusChange', 'ResourceUpdated', 'Alert'],
      },
    },
  };
}

export { collection };

/** A Redfish error body (Base message registry). */
export function errorBody(messageId: string, message: string): Doc {
  return {
    error: {
      code: `Base.1.8.${messageId}`,
      message,
      '@Message.ExtendedInfo': [
        {
          '@odata.type': '#Message.v1_1_1.Message',
          MessageId: `Base.1.8.${messageId}`,
          Message: message,
          Severity: 'Critical',
        },
      ],
    },
  };
}
