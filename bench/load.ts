import autocannon from 'autocannon'
import type { CpuMeter, CpuPerRequest } from './cpu.js'

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10)

let meter: CpuMeter | undefined

/** The meter every `cannon` run reports CPU per request with (set once the system runs). */
export function useCpuMeter(value: CpuMeter): void {
  meter = value
}

export interface LoadResult {
  rps: number
  p50: number
  /** autocannon's histogram has no p95: p97.5 is the nearest it keeps. */
  p97_5: number
  p99: number
  non2xx: number
  errors: number
  /** Requests completed. */
  total: number
  /** CPU per request of each process during the load (`pnpm bench` reports it for every scenario). */
  cpu: CpuPerRequest | undefined
}

/** One autocannon load (BENCH_SECONDS long, 32 connections unless told), with its CPU per request. */
export async function cannon(options: autocannon.Options): Promise<LoadResult> {
  const stop = meter?.start()
  const result = await autocannon({ duration: SECONDS, connections: 32, ...options })
  return {
    rps: result.requests.average,
    p50: result.latency.p50,
    p97_5: result.latency.p97_5,
    p99: result.latency.p99,
    non2xx: result.non2xx,
    errors: result.errors,
    total: result.requests.total,
    cpu: stop?.(result.requests.total)
  }
}
