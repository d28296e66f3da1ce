/**
 * Loader for OMA DDF XML object definitions (the format of the public LwM2M registry). Lenient
 * where real registry files vary (case, whitespace, "Unsigned Integer"), strict where a file is
 * really broken; every rejection is a DdfError that names the file and what is wrong.
 */
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { Lwm2mError, ObjectDefinition, Operations, ResourceDefinition, ResourceType } from '../types';

export class DdfError extends Lwm2mError {
  constructor(readonly file: string, problem: string) {
    super(`${file}: ${problem}`);
  }
}

const TYPES: Record<string, ResourceType> = {
  string: 'string', integer: 'integer', 'unsigned integer': 'unsigned', unsigned: 'unsigned', float: 'float',
  boolean: 'boolean', opaque: 'opaque', time: 'time', objlnk: 'objlnk', corelnk: 'corelnk', '': 'none', none: 'none',
};

const OPERATIONS: Record<string, Operations> = { '': '', r: 'R', w: 'W', rw: 'RW', e: 'E', none: '' };

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@',
  parseTagValue: false, // keep every text as a string: ids are checked here, not guessed by the parser
  trimValues: true,
  processEntities: false, // no entity expansion: a registry file has no business defining entities
  isArray: (name) => name === 'Object' || name === 'Item',
});

type XmlNode = Record<string, unknown>;

function text(node: XmlNode, key: string): string {
  const v = node[key];
  if (v === undefined || v === null) return '';
  if (typeof v === 'string') return v.trim();
  if (typeof v === 'object' && typeof (v as XmlNode)['#text'] === 'string') return ((v as XmlNode)['#text'] as string).trim();
  return '';
}

function id(file: string, raw: string, what: string): number {
  if (!/^\d{1,5}$/.test(raw) || Number(raw) > 65535) throw new DdfError(file, `${what} "${raw}" is not an id from 0 to 65535`);
  return Number(raw);
}

function multiple(value: string): boolean {
  return value.toLowerCase() === 'multiple';
}

export function parseDdf(xml: string, file: string): ObjectDefinition[] {
  if (/<!ENTITY/i.test(xml)) throw new DdfError(file, 'entity declarations are not allowed');
  const valid = XMLValidator.validate(xml);
  if (valid !== true) throw new DdfError(file, `not well-formed XML (line ${valid.err.line}: ${valid.err.msg})`);
  let doc: XmlNode;
  try {
    doc = parser.parse(xml) as XmlNode;
  } catch (err) {
    throw new DdfError(file, `not well-formed XML (${(err as Error).message})`);
  }
  const root = doc.LWM2M as XmlNode | undefined;
  if (!root || typeof root !== 'object') throw new DdfError(file, 'no <LWM2M> root element: not an object definition file');
  const objects = root.Object as XmlNode[] | undefined;
  if (!objects || objects.length === 0) throw new DdfError(file, 'no <Object> inside <LWM2M>');
  return objects.map((obj) => parseObject(obj, file));
}

function parseObject(obj: XmlNode, file: string): ObjectDefinition {
  const rawId = text(obj, 'ObjectID');
  if (!rawId) throw new DdfError(file, 'missing <ObjectID>');
  const objectId = id(file, rawId, 'ObjectID');
  const name = text(obj, 'Name');
  if (!name) throw new DdfError(file, `object ${objectId} has no <Name>`);
  const resources = new Map<number, ResourceDefinition>();
  const container = obj.Resources;
  const items = container && typeof container === 'object' ? ((container as XmlNode).Item as XmlNode[] | undefined) ?? [] : [];
  for (const item of items) {
    const rawRid = typeof item['@ID'] === 'string' ? (item['@ID'] as string).trim() : '';
    const where = `object ${objectId} resource ${rawRid || '?'}`;
    if (!rawRid) throw new DdfError(file, `object ${objectId}: an <Item> has no ID attribute`);
    const rid = id(file, rawRid, `object ${objectId} resource ID`);
    if (resources.has(rid)) throw new DdfError(file, `object ${objectId}: resource ${rid} is defined twice`);
    const rawType = text(item, 'Type').toLowerCase();
    const type = TYPES[rawType];
    if (type === undefined) throw new DdfError(file, `${where}: unknown <Type> "${text(item, 'Type')}"`);
    const rawOps = text(item, 'Operations').toLowerCase();
    const operations = OPERATIONS[rawOps];
    if (operations === undefined) throw new DdfError(file, `${where}: unknown <Operations> "${text(item, 'Operations')}"`);
    resources.set(rid, {
      id: rid,
      name: text(item, 'Name') || `Resource ${rid}`,
      operations,
      multiple: multiple(text(item, 'MultipleInstances')),
      mandatory: text(item, 'Mandatory').toLowerCase() === 'mandatory',
      type: operations === 'E' && type === 'none' ? 'none' : type,
      rangeEnumeration: text(item, 'RangeEnumeration') || undefined,
      units: text(item, 'Units') || undefined,
      description: text(item, 'Description') || undefined,
    });
  }
  return {
    id: objectId,
    name,
    description: text(obj, 'Description1') || undefined,
    urn: text(obj, 'ObjectURN') || undefined,
    version: text(obj, 'ObjectVersion') || '1.0',
    lwm2mVersion: text(obj, 'LWM2MVersion') || undefined,
    multiple: multiple(text(obj, 'MultipleInstances')),
    mandatory: text(obj, 'Mandatory').toLowerCase() === 'mandatory',
    resources,
  };
}
