/** What the accounting routes answer, as the console reads it: the contract's (src/api), as types only. Money is in integer minor units. */
export type {
  CostBreakdown as Cost,
  Report,
  ReportRow,
  Showback,
} from '../../../src/api/accounting.ts';
