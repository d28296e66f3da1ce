/**
 * Shared value and model types of the LwM2M core. No Node-RED imports anywhere under src/lwm2m.
 */

/** Resource data types of the LwM2M object model (DDF `<Type>`); `none` is an executable resource. */
export type ResourceType =
  | 'string' | 'integer' | 'unsigned' | 'float' | 'boolean' | 'opaque'
  | 'time' | 'objlnk' | 'corelnk' | 'none';

/** An Object Link value (`objlnk`), e.g. 3:0. */
export interface ObjectLink {
  objectId: number;
  instanceId: number;
}

/**
 * One resource (or resource instance) value as flows see it:
 * string/corelnk → string, integer/unsigned/float → number, boolean → boolean,
 * opaque → Buffer, time → Date, objlnk → ObjectLink.
 */
export type ResourceValue = string | number | boolean | Buffer | Date | ObjectLink;

/** A parsed LwM2M path. Levels below the first undefined one are undefined too. */
export interface Lwm2mPath {
  objectId: number;
  instanceId?: number;
  resourceId?: number;
  resourceInstanceId?: number;
}

/** A value at a fully qualified resource or resource-instance path: the unit every codec speaks. */
export interface ResourceRecord {
  path: Lwm2mPath; // always has objectId, instanceId and resourceId
  value: ResourceValue;
  /**
   * When the value was measured, in seconds since the Unix epoch (may have a fraction), if the
   * payload said (SenML bt + t; values below 2^28 were relative to the time of decoding, RFC 8428
   * §4.5.3, and are made absolute).
   */
  time?: number;
}

/**
 * The nested value a message carries (DESIGN §3): a primitive for a single resource,
 * `{ resId: value }` for an instance (a multi-instance resource is `{ riId: value }`),
 * `{ instId: { resId: value } }` for an object.
 */
export type ValueTree = ResourceValue | { [id: string]: ValueTree };

export type Operations = '' | 'R' | 'W' | 'RW' | 'E';

export interface ResourceDefinition {
  id: number;
  name: string;
  operations: Operations;
  multiple: boolean;
  mandatory: boolean;
  type: ResourceType;
  rangeEnumeration?: string;
  units?: string;
  description?: string;
}

export interface ObjectDefinition {
  id: number;
  name: string;
  description?: string;
  urn?: string;
  /** Object version, "1.0" when the DDF has none. */
  version: string;
  lwm2mVersion?: string;
  multiple: boolean;
  mandatory: boolean;
  resources: Map<number, ResourceDefinition>;
}

/** What codecs need of the object model: the type of a resource, if known. */
export interface ResourceTypeLookup {
  resourceType(objectId: number, resourceId: number): ResourceType | undefined;
  isMultiple?(objectId: number, resourceId: number): boolean | undefined;
}

/** Base class of every error the core raises on bad input, so callers can tell them apart. */
export class Lwm2mError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}
