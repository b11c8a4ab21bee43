/** The syntax tree of a policy expression. Every node knows where it was written. */
import type { SourcePosition } from './source-position.js';

/** The objects placement's expressions may read facts of. */
export const placementRoots = ['vm', 'host', 'cluster', 'datacenter', 'group', 'user'] as const;
/** The objects a role binding's condition reads: the identity asking and the object it acts on. */
export const accessRoots = ['subject', 'object'] as const;
/** The objects an expression may read facts of. */
export const roots = [...placementRoots, ...accessRoots] as const;
export type Root = (typeof roots)[number];

export function isRoot(name: string): name is Root {
  return (roots as readonly string[]).includes(name);
}

export type Value = string | number | boolean | null | readonly Value[];

export type BinaryOperator =
  '+' | '-' | '*' | '/' | '%' | '&' | '|' | '==' | '!=' | '<' | '<=' | '>' | '>=';

export type Node =
  | { type: 'literal'; value: Value; at: SourcePosition }
  | { type: 'path'; root: string; key: string; at: SourcePosition }
  | { type: 'list'; items: Node[]; at: SourcePosition }
  | { type: 'unary'; op: 'not' | '-'; operand: Node; at: SourcePosition }
  | { type: 'binary'; op: BinaryOperator; left: Node; right: Node; at: SourcePosition }
  | { type: 'logical'; op: 'and' | 'or'; left: Node; right: Node; at: SourcePosition }
  | {
      type: 'membership';
      negated: boolean;
      element: Node;
      collection: Node | RangeNode;
      at: SourcePosition;
    }
  | { type: 'call'; name: string; args: Node[]; at: SourcePosition };

export interface RangeNode {
  type: 'range';
  low: Node;
  high: Node;
  at: SourcePosition;
}
