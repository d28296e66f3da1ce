export { ObjectRegistry, LoadReport } from './registry';
export { DdfError, parseDdf } from './ddf';
export { BUILTIN_OBJECTS } from './builtin';
export { namedComposite, namedValues } from './named';
