/** What the accounting routes answer, as the console reads it. Money is in integer minor units. */

// The contract's declaration (type only: nothing of the server is bundled).
import type { CostBreakdown as Cost } from '../../../src/api/accounting.ts';

export type { Cost };

export interface ReportRow {
  bucketStart: number;
  key: string;
  label: string;
  vms: number;
  runningMs: number;
  cost: Cost;
}

export interface Report {
  currency: string | null;
  minorDigits: number;
  /** The rate card versions that priced the report. */
  rateCards: Array<{ id: string; version: number; effectiveFrom: number }>;
  rows: ReportRow[];
  totals: Cost;
}

export interface Showback {
  currency: string | null;
  minorDigits: number;
  groups: Array<{ key: string; vms: number; cost: Cost }>;
  totals: Cost;
}
