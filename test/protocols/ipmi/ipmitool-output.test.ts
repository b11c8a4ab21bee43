import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  readChassisStatus,
  readFru,
  readGuid,
  readMcInfo,
  readPowerStatus,
  readSdr,
} from '../../../src/protocols/ipmi/ipmitool-output.js';

// Output as ipmitool 1.8.19 prints it (captured from a Dell-like board and from ipmi_sim).
test('power status, GUID and mc info are read from their lines', () => {
  assert.equal(readPowerStatus('Chassis Power is off\n'), 'off');
  assert.throws(() => readPowerStatus(''), { code: 'IPMI_OUTPUT_INVALID' });
  assert.equal(
    readGuid('System GUID   : 5452BCBA-d6f2-4a9d-9b93-62198743ddd9\nGUID Encoding : IPMI\n'),
    '5452bcba-d6f2-4a9d-9b93-62198743ddd9',
  );
  assert.deepEqual(
    readMcInfo(
      'Device ID                 : 32\nFirmware Revision         : 2.31\nIPMI Version              : 2.0\nManufacturer ID           : 674\nManufacturer Name         : DELL Inc\nProduct ID                : 256 (0x0100)\n',
    ),
    {
      firmwareVersion: '2.31',
      ipmiVersion: '2.0',
      manufacturerId: 674,
      manufacturerName: 'DELL Inc',
      productId: 256,
    },
  );
});

test('FRU data comes from the product area, else the board area', () => {
  const board =
    ' FRU Device Description : Builtin FRU Device (ID 0)\n Board Mfg Date        : Mon Jan  1 00:00:00 1996\n Board Mfg             : DELL\n Board Product         : PowerEdge R640\n Board Serial          : CNFCP0091C00RW\n Board Part Number     : 0CRT1GA05\n';
  assert.deepEqual(readFru(board), {
    vendor: 'DELL',
    model: 'PowerEdge R640',
    serial: 'CNFCP0091C00RW',
    partNumber: '0CRT1GA05',
  });
  assert.deepEqual(
    readFru(`${board} Product Manufacturer  : Dell Inc.\n Product Name          : R640\n`),
    {
      vendor: 'Dell Inc.',
      model: 'R640',
      serial: 'CNFCP0091C00RW',
      partNumber: '0CRT1GA05',
    },
  );
});

test('sensor lines with a reading become sensors; the rest are left out', () => {
  const sdr = [
    'Inlet Temp       | 04h | ok  |  7.1 | 23 degrees C',
    'Fan1A            | 30h | ok  |  7.1 | 5880 RPM',
    'Pwr Consumption  | 77h | ok  |  7.1 | 112 Watts',
    'Voltage 1        | 6Ch | ok  | 10.1 | 232 Volts',
    'Current 1        | 6Ah | ok  | 10.1 | 0.40 Amps',
    'Temp             | 0Eh | ns  |  3.1 | Disabled',
    'Fan2             | 31h | ns  |  7.1 | No Reading',
    '',
  ].join('\n');
  assert.deepEqual(
    readSdr(sdr).map((s) => [s.name, s.number, s.kind, s.value, s.unit]),
    [
      ['Inlet Temp', 4, 'temperature', 23, 'degrees C'],
      ['Fan1A', 48, 'fan', 5880, 'RPM'],
      ['Pwr Consumption', 119, 'power', 112, 'Watts'],
      ['Voltage 1', 108, 'voltage', 232, 'Volts'],
      ['Current 1', 106, 'current', 0.4, 'Amps'],
    ],
  );
});

test('Get Chassis Status bytes give the power, and the identify state only where the BMC says it reports it', () => {
  // What ipmi_sim answers (power on, the "identify state supported" bit clear): no identify state.
  assert.deepEqual(readChassisStatus(' 01 00 00\n'), { power: 'on' });
  // A BMC that reports it (bit 6), with the fourth byte (front panel) some send.
  assert.deepEqual(readChassisStatus(' 01 00 40 00\n'), { power: 'on', identify: 'off' });
  assert.deepEqual(readChassisStatus(' 00 00 50\n'), { power: 'off', identify: 'timed' });
  assert.deepEqual(readChassisStatus(' 21 10 60 aa\n'), { power: 'on', identify: 'on' });
  // The other bits of byte 3 (fan, drive faults) do not disturb it; state 3 is reserved.
  assert.deepEqual(readChassisStatus(' 01 00 6c\n'), { power: 'on', identify: 'on' });
  assert.deepEqual(readChassisStatus(' 01 00 70\n'), { power: 'on' });
  for (const garbage of ['', ' 01 00\n', 'Unable to send RAW command\n', ' 01 zz 00\n'])
    assert.throws(() => readChassisStatus(garbage), { code: 'IPMI_OUTPUT_INVALID' });
});
