/**
 * The shapes of the public API's answers that the console reads: the contract's own (src/api),
 * imported as types only, so nothing of the server is bundled.
 */
import type { Static } from 'typebox';
import type { AnswerOf } from '../../../src/api/operation.ts';
import type { IdentityView as IdentityViewSchema, login } from '../../../src/api/auth.ts';
import type { FactValue } from '../../../src/api/common.ts';
import type { ConsoleTicket } from '../../../src/api/consoles.ts';
import type { ZenithEvent } from '../../../src/api/events.ts';
import type { LocationView, ManagedObjectView } from '../../../src/api/inventory.ts';
import type { TaskView } from '../../../src/api/tasks.ts';

export type { ConsoleTicket, FactValue, ZenithEvent };

export type ManagedObject = ManagedObjectView;

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

export type Identity = Static<typeof IdentityViewSchema>;

export type LoginAnswer = AnswerOf<typeof login>;

export type LocationInterval = LocationView;

export type Task = TaskView;
