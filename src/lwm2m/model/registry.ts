import { promises as fs } from 'fs';
import * as path from 'path';
import { ObjectDefinition, ResourceDefinition, ResourceType, ResourceTypeLookup } from '../types';
import { BUILTIN_OBJECTS } from './builtin';
import { DdfError, parseDdf } from './ddf';

export interface LoadReport {
  loaded: ObjectDefinition[];
  errors: DdfError[];
}

/** The object definitions a server or client knows: built-ins plus a user's DDF folder. */
export class ObjectRegistry implements ResourceTypeLookup {
  private readonly objects = new Map<number, ObjectDefinition>();

  static withBuiltins(): ObjectRegistry {
    const registry = new ObjectRegistry();
    for (const def of BUILTIN_OBJECTS) registry.add(def);
    return registry;
  }

  /** Adds a definition; it replaces one with the same id (a user's DDF wins over a built-in). */
  add(def: ObjectDefinition): void {
    this.objects.set(def.id, def);
  }

  get(objectId: number): ObjectDefinition | undefined {
    return this.objects.get(objectId);
  }

  resource(objectId: number, resourceId: number): ResourceDefinition | undefined {
    return this.objects.get(objectId)?.resources.get(resourceId);
  }

  resourceType(objectId: number, resourceId: number): ResourceType | undefined {
    return this.resource(objectId, resourceId)?.type;
  }

  isMultiple(objectId: number, resourceId: number): boolean | undefined {
    return this.resource(objectId, resourceId)?.multiple;
  }

  ids(): number[] {
    return [...this.objects.keys()].sort((a, b) => a - b);
  }

  /** Loads every *.xml of a folder. A bad file is reported in `errors`, never thrown. */
  async loadFolder(dir: string): Promise<LoadReport> {
    const report: LoadReport = { loaded: [], errors: [] };
    const names = (await fs.readdir(dir)).filter((n) => n.toLowerCase().endsWith('.xml')).sort();
    for (const name of names) {
      const file = path.join(dir, name);
      try {
        const defs = parseDdf(await fs.readFile(file, 'utf8'), name);
        for (const def of defs) this.add(def);
        report.loaded.push(...defs);
      } catch (err) {
        report.errors.push(err instanceof DdfError ? err : new DdfError(name, `cannot be read: ${(err as Error).message}`));
      }
    }
    return report;
  }
}
