/**
 * The BMC connection families, registered beside the hypervisor families by
 * the composition root: `redfish` and `ipmi`.
 */
import type { DriverFamily } from '../hypervisors/registry.js';
import { bmcPassword, validateIpmiSettings, validateRedfishSettings } from './bmc-settings.js';
import { IpmiMachines } from './ipmi-machines.js';
import { RedfishMachines } from './redfish-machines.js';

export const redfishFamily: DriverFamily = {
  type: 'redfish',
  description:
    'A physical machine’s BMC over Redfish (HTTPS): hardware, sensors, power, boot, virtual media',
  simulated: false,
  identifiesPeer: true,
  validate: (settings) => ({ ...validateRedfishSettings(settings) }),
  create: (settings, secret, context) =>
    new RedfishMachines(
      validateRedfishSettings(settings),
      bmcPassword('redfish', secret),
      context.clock,
      context.logger,
    ),
};

export const ipmiFamily: DriverFamily = {
  type: 'ipmi',
  description: 'A physical machine’s BMC over IPMI 2.0 LAN (RMCP+): power, boot device, sensors',
  simulated: false,
  identifiesPeer: true,
  validate: (settings) => ({ ...validateIpmiSettings(settings) }),
  create: (settings, secret, context) =>
    new IpmiMachines(
      validateIpmiSettings(settings),
      bmcPassword('ipmi', secret),
      context.clock,
      context.logger,
    ),
};

export const machineFamilies: DriverFamily[] = [redfishFamily, ipmiFamily];
