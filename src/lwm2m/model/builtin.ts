/**
 * Built-in object definitions, written from the OMA LwM2M 1.1 Core specification (Appendix E:
 * objects 0–7) and the IPSO Smart Objects guideline (common sensors and actuators). A user's DDF
 * folder may replace any of them.
 */
import { ObjectDefinition, Operations, ResourceDefinition, ResourceType } from '../types';

type Row = [id: number, name: string, operations: Operations, type: ResourceType, flags?: string];

/** flags: 'M' mandatory, '*' multiple instances. */
function object(id: number, name: string, version: string, multiple: boolean, mandatory: boolean, rows: Row[]): ObjectDefinition {
  const resources = new Map<number, ResourceDefinition>();
  for (const [rid, rname, operations, type, flags = ''] of rows) {
    resources.set(rid, { id: rid, name: rname, operations, type, mandatory: flags.includes('M'), multiple: flags.includes('*') });
  }
  return { id, name, version, multiple, mandatory, resources };
}

const SECURITY = object(0, 'LwM2M Security', '1.1', true, true, [
  [0, 'LwM2M Server URI', '', 'string', 'M'], [1, 'Bootstrap-Server', '', 'boolean', 'M'],
  [2, 'Security Mode', '', 'integer', 'M'], [3, 'Public Key or Identity', '', 'opaque', 'M'],
  [4, 'Server Public Key', '', 'opaque', 'M'], [5, 'Secret Key', '', 'opaque', 'M'],
  [6, 'SMS Security Mode', '', 'integer'], [7, 'SMS Binding Key Parameters', '', 'opaque'],
  [8, 'SMS Binding Secret Key(s)', '', 'opaque'], [9, 'LwM2M Server SMS Number', '', 'string'],
  [10, 'Short Server ID', '', 'integer'], [11, 'Client Hold Off Time', '', 'integer'],
  [12, 'Bootstrap-Server Account Timeout', '', 'integer'], [13, 'Matching Type', '', 'unsigned'],
  [14, 'SNI', '', 'string'], [15, 'Certificate Usage', '', 'unsigned'],
  [16, 'DTLS/TLS Ciphersuite', '', 'unsigned', '*'], [17, 'OSCORE Security Mode', '', 'objlnk'],
]);

const SERVER = object(1, 'LwM2M Server', '1.1', true, true, [
  [0, 'Short Server ID', 'R', 'integer', 'M'], [1, 'Lifetime', 'RW', 'integer', 'M'],
  [2, 'Default Minimum Period', 'RW', 'integer'], [3, 'Default Maximum Period', 'RW', 'integer'],
  [4, 'Disable', 'E', 'none'], [5, 'Disable Timeout', 'RW', 'integer'],
  [6, 'Notification Storing When Disabled or Offline', 'RW', 'boolean', 'M'], [7, 'Binding', 'RW', 'string', 'M'],
  [8, 'Registration Update Trigger', 'E', 'none', 'M'], [9, 'Bootstrap-Request Trigger', 'E', 'none'],
  [10, 'APN Link', 'RW', 'objlnk'], [11, 'TLS-DTLS Alert Code', 'R', 'unsigned'],
  [12, 'Last Bootstrapped', 'R', 'time'], [13, 'Registration Priority Order', 'RW', 'unsigned'],
  [14, 'Initial Registration Delay Timer', 'RW', 'unsigned'], [15, 'Registration Failure Block', 'RW', 'boolean'],
  [16, 'Bootstrap on Registration Failure', 'RW', 'boolean'], [17, 'Communication Retry Count', 'RW', 'unsigned'],
  [18, 'Communication Retry Timer', 'RW', 'unsigned'], [19, 'Communication Sequence Delay Timer', 'RW', 'unsigned'],
  [20, 'Communication Sequence Retry Count', 'RW', 'unsigned'], [21, 'Trigger', 'RW', 'boolean'],
  [22, 'Preferred Transport', 'RW', 'string'], [23, 'Mute Send', 'RW', 'boolean'],
]);

const ACCESS_CONTROL = object(2, 'LwM2M Access Control', '1.0', true, false, [
  [0, 'Object ID', 'R', 'integer', 'M'], [1, 'Object Instance ID', 'R', 'integer', 'M'],
  [2, 'ACL', 'RW', 'integer', '*'], [3, 'Access Control Owner', 'RW', 'integer', 'M'],
]);

const DEVICE = object(3, 'Device', '1.1', false, true, [
  [0, 'Manufacturer', 'R', 'string'], [1, 'Model Number', 'R', 'string'], [2, 'Serial Number', 'R', 'string'],
  [3, 'Firmware Version', 'R', 'string'], [4, 'Reboot', 'E', 'none', 'M'], [5, 'Factory Reset', 'E', 'none'],
  [6, 'Available Power Sources', 'R', 'integer', '*'], [7, 'Power Source Voltage', 'R', 'integer', '*'],
  [8, 'Power Source Current', 'R', 'integer', '*'], [9, 'Battery Level', 'R', 'integer'],
  [10, 'Memory Free', 'R', 'integer'], [11, 'Error Code', 'R', 'integer', 'M*'], [12, 'Reset Error Code', 'E', 'none'],
  [13, 'Current Time', 'RW', 'time'], [14, 'UTC Offset', 'RW', 'string'], [15, 'Timezone', 'RW', 'string'],
  [16, 'Supported Binding and Modes', 'R', 'string', 'M'], [17, 'Device Type', 'R', 'string'],
  [18, 'Hardware Version', 'R', 'string'], [19, 'Software Version', 'R', 'string'], [20, 'Battery Status', 'R', 'integer'],
  [21, 'Memory Total', 'R', 'integer'], [22, 'ExtDevInfo', 'R', 'objlnk', '*'],
]);

const CONNECTIVITY_MONITORING = object(4, 'Connectivity Monitoring', '1.1', false, false, [
  [0, 'Network Bearer', 'R', 'integer', 'M'], [1, 'Available Network Bearer', 'R', 'integer', 'M*'],
  [2, 'Radio Signal Strength', 'R', 'integer', 'M'], [3, 'Link Quality', 'R', 'integer'],
  [4, 'IP Addresses', 'R', 'string', 'M*'], [5, 'Router IP Addresses', 'R', 'string', '*'],
  [6, 'Link Utilization', 'R', 'integer'], [7, 'APN', 'R', 'string', '*'], [8, 'Cell ID', 'R', 'integer'],
  [9, 'SMNC', 'R', 'integer'], [10, 'SMCC', 'R', 'integer'], [11, 'SignalSNR', 'R', 'integer'], [12, 'LAC', 'R', 'integer'],
]);

const FIRMWARE_UPDATE = object(5, 'Firmware Update', '1.0', false, false, [
  [0, 'Package', 'W', 'opaque', 'M'], [1, 'Package URI', 'RW', 'string', 'M'], [2, 'Update', 'E', 'none', 'M'],
  [3, 'State', 'R', 'integer', 'M'], [5, 'Update Result', 'R', 'integer', 'M'], [6, 'PkgName', 'R', 'string'],
  [7, 'PkgVersion', 'R', 'string'], [8, 'Firmware Update Protocol Support', 'R', 'integer', '*'],
  [9, 'Firmware Update Delivery Method', 'R', 'integer', 'M'],
]);

const LOCATION = object(6, 'Location', '1.0', false, false, [
  [0, 'Latitude', 'R', 'float', 'M'], [1, 'Longitude', 'R', 'float', 'M'], [2, 'Altitude', 'R', 'float'],
  [3, 'Radius', 'R', 'float'], [4, 'Velocity', 'R', 'opaque'], [5, 'Timestamp', 'R', 'time', 'M'], [6, 'Speed', 'R', 'float'],
]);

const CONNECTIVITY_STATISTICS = object(7, 'Connectivity Statistics', '1.0', false, false, [
  [0, 'SMS Tx Counter', 'R', 'integer'], [1, 'SMS Rx Counter', 'R', 'integer'], [2, 'Tx Data', 'R', 'integer'],
  [3, 'Rx Data', 'R', 'integer'], [4, 'Max Message Size', 'R', 'integer'], [5, 'Average Message Size', 'R', 'integer'],
  [6, 'Start', 'E', 'none', 'M'], [7, 'Stop', 'E', 'none', 'M'], [8, 'Collection Period', 'RW', 'integer'],
]);

/** The reusable resources every IPSO sensor object shares. */
const SENSOR: Row[] = [
  [5700, 'Sensor Value', 'R', 'float', 'M'], [5701, 'Sensor Units', 'R', 'string'],
  [5601, 'Min Measured Value', 'R', 'float'], [5602, 'Max Measured Value', 'R', 'float'],
  [5603, 'Min Range Value', 'R', 'float'], [5604, 'Max Range Value', 'R', 'float'],
  [5605, 'Reset Min and Max Measured Values', 'E', 'none'], [5750, 'Application Type', 'RW', 'string'],
  [5518, 'Timestamp', 'R', 'time'], [6042, 'Measurement Quality Indicator', 'R', 'integer'],
  [6049, 'Measurement Quality Level', 'R', 'integer'],
];

const sensor = (id: number, name: string, extra: Row[] = []) => object(id, name, '1.1', true, false, [...SENSOR, ...extra]);

const DIGITAL_INPUT: Row[] = [
  [5500, 'Digital Input State', 'R', 'boolean', 'M'], [5501, 'Digital Input Counter', 'R', 'integer'],
  [5750, 'Application Type', 'RW', 'string'],
];

export const BUILTIN_OBJECTS: ObjectDefinition[] = [
  SECURITY, SERVER, ACCESS_CONTROL, DEVICE, CONNECTIVITY_MONITORING, FIRMWARE_UPDATE, LOCATION, CONNECTIVITY_STATISTICS,
  object(3200, 'Digital Input', '1.0', true, false, [
    ...DIGITAL_INPUT, [5502, 'Digital Input Polarity', 'RW', 'boolean'], [5503, 'Digital Input Debounce', 'RW', 'integer'],
    [5504, 'Digital Input Edge Selection', 'RW', 'integer'], [5505, 'Digital Input Counter Reset', 'E', 'none'],
    [5751, 'Sensor Type', 'R', 'string'],
  ]),
  object(3201, 'Digital Output', '1.0', true, false, [
    [5550, 'Digital Output State', 'RW', 'boolean', 'M'], [5551, 'Digital Output Polarity', 'RW', 'boolean'],
    [5750, 'Application Type', 'RW', 'string'],
  ]),
  sensor(3300, 'Generic Sensor', [[5751, 'Sensor Type', 'R', 'string']]),
  sensor(3301, 'Illuminance'),
  sensor(3303, 'Temperature'),
  sensor(3304, 'Humidity'),
  sensor(3315, 'Barometer'),
  sensor(3316, 'Voltage'),
  sensor(3317, 'Current'),
  sensor(3323, 'Pressure'),
  sensor(3328, 'Power'),
  object(3311, 'Light Control', '1.0', true, false, [
    [5850, 'On/Off', 'RW', 'boolean', 'M'], [5851, 'Dimmer', 'RW', 'integer'], [5852, 'On Time', 'RW', 'integer'],
    [5805, 'Cumulative Active Power', 'R', 'float'], [5820, 'Power Factor', 'R', 'float'], [5706, 'Colour', 'RW', 'string'],
    [5701, 'Sensor Units', 'R', 'string'], [5750, 'Application Type', 'RW', 'string'],
  ]),
  object(3336, 'Location', '1.0', true, false, [
    [5514, 'Latitude', 'R', 'string', 'M'], [5515, 'Longitude', 'R', 'string', 'M'], [5516, 'Uncertainty', 'R', 'string'],
    [5705, 'Compass Direction', 'R', 'float'], [5517, 'Velocity', 'R', 'opaque'], [5518, 'Timestamp', 'R', 'time'],
    [5750, 'Application Type', 'RW', 'string'],
  ]),
  object(3342, 'On/Off switch', '1.0', true, false, [
    ...DIGITAL_INPUT, [5852, 'On Time', 'RW', 'integer'], [5854, 'Off Time', 'RW', 'integer'],
  ]),
  object(3347, 'Push button', '1.0', true, false, DIGITAL_INPUT),
];
