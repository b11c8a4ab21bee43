/** What the accounting routes answer, as the console reads it. Money is in integer minor units. */

export interface Cost {
  vcpu: number;
  memory: number;
  disk: number;
  fixed: number;
  discount: number;
  total: number;
}

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
