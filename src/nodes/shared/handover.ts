/**
 * What a node closed by a deploy leaves for the node that replaces it (the same node id): taken
 * within KEEP_MS (the new flow starts at once) or dropped, so a node that never comes back leaves
 * nothing behind.
 */
const KEEP_MS = 60_000;

export class Handover<T> {
  private readonly entries = new Map<string, { at: number; value: T }>();

  keep(nodeId: string, value: T): void {
    const now = Date.now();
    for (const [id, entry] of this.entries) if (now - entry.at >= KEEP_MS) this.entries.delete(id);
    this.entries.set(nodeId, { at: now, value });
  }

  take(nodeId: string): T | undefined {
    const entry = this.entries.get(nodeId);
    this.entries.delete(nodeId);
    return entry && Date.now() - entry.at < KEEP_MS ? entry.value : undefined;
  }
}
