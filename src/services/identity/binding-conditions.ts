/**
 * Conditions on role bindings: an expression in the policy language
 * (docs/policies.md) over the facts of the identity asking (`subject.…`) and
 * of the object it acts on (`object.…`), e.g.
 * `subject.department == object.user.costCenter`. A binding with a condition
 * grants its role only where the condition gives true; one that cannot be
 * evaluated (a fact of the wrong type) grants nothing, and the explanation
 * says why.
 */
import { isZenithError, ZenithError } from '../../core/errors.js';
import { ownFact, type FactValue, type Facts } from '../inventory/model.js';
import { accessRoots } from '../policy/language/ast.js';
import {
  compileCondition,
  holds,
  type CompiledExpression,
  type FactSource,
} from '../policy/language/compiler.js';

export const maxConditionLength = 4096;

/** Compiles a binding's condition, or refuses it with the policy language's coded 400. */
export function compileBindingCondition(source: string): CompiledExpression {
  if (source.length > maxConditionLength)
    throw new ZenithError(
      'ZEN_BAD_REQUEST',
      `a binding condition is at most ${maxConditionLength} characters`,
    );
  return compileCondition(source, {
    allowedRoots: [...accessRoots],
    purpose: "a binding's condition",
  });
}

/** How a condition came out for one subject and object. */
export interface ConditionOutcome {
  bindingId: string;
  condition: string;
  held: boolean;
  /** Why it could not be evaluated (a fact of the wrong type), when it could not. */
  error?: string;
}

export function evaluateCondition(
  bindingId: string,
  compiled: CompiledExpression,
  subject: FactSource | undefined,
  object: FactSource | undefined,
): ConditionOutcome {
  try {
    return {
      bindingId,
      condition: compiled.source,
      held: holds(compiled, { subject, object }),
    };
  } catch (error) {
    if (!isZenithError(error)) throw error;
    return { bindingId, condition: compiled.source, held: false, error: error.message };
  }
}

/** The facts of an identity: its attributes (users) or its host's facts (agents), and who it is. */
export class IdentityFacts implements FactSource {
  constructor(
    private readonly builtins: { id: string; name: string; kind: string; role: string },
    private readonly facts: Facts,
  ) {}

  fact(key: string): FactValue | undefined {
    if (key === 'id' || key === 'name' || key === 'kind' || key === 'role')
      return this.builtins[key];
    return ownFact(this.facts, key);
  }
}

/** Identity attributes are named like facts and hold what facts hold. */
const attributeName = /^[a-zA-Z][a-zA-Z0-9_.-]{0,63}$/;
const reserved = new Set(['id', 'name', 'kind', 'role']);

export function checkAttributes(attributes: Record<string, unknown>): Facts {
  const entries = Object.entries(attributes);
  if (entries.length > 64)
    throw new ZenithError('ZEN_BAD_REQUEST', 'an identity has at most 64 attributes');
  const checked: Facts = {};
  for (const [key, value] of entries) {
    if (!attributeName.test(key) || reserved.has(key))
      throw new ZenithError('ZEN_BAD_REQUEST', `'${key}' is not a valid attribute name`, {
        attribute: key,
      });
    const ok =
      value === null ||
      typeof value === 'boolean' ||
      (typeof value === 'number' && Number.isFinite(value)) ||
      (typeof value === 'string' && value.length <= 1024) ||
      (Array.isArray(value) &&
        value.length <= 256 &&
        value.every((v) => typeof v === 'string' && v.length <= 1024));
    if (!ok)
      throw new ZenithError(
        'ZEN_BAD_REQUEST',
        `attribute '${key}' must be a string, number, true/false, a list of strings or null`,
        { attribute: key },
      );
    checked[key] = value as FactValue;
  }
  return checked;
}
