import { execFile, execFileSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { parseAllDocuments } from 'yaml'
import { BACKEND_NAMES, DEFAULT_PORTS, REPO_ROOT, SERVICE_DIRS, SERVICE_NAMES } from '../local/system.js'
import { IdentityConfigSchema } from '@roster/identity/testing'
import { DirectoryConfigSchema } from '@roster/directory/testing'
import { AuditConfigSchema } from '@roster/audit/testing'
import { GatewayConfigSchema } from '../../gateway/src/config.js'
import { validateObject } from './k8s-schema.js'

// kubectl kustomize over every overlay: 109 s of tap's default 120 s with the machine loaded; a budget of its own.
t.setTimeout(300_000)

// deploy/k8s rendered by `kubectl kustomize` (no API server here) and validated strictly against the
// Kubernetes schemas (unknown fields refused), then checked for what an operator relies on; and
// deploy/docker/Dockerfile read statically (pnpm test:images builds and runs the images).

type Doc = Record<string, any>

const K8S = join(REPO_ROOT, 'deploy', 'k8s')
const DOCKERFILE = join(REPO_ROOT, 'deploy', 'docker', 'Dockerfile')
const OVERLAYS = ['local', 'production'] as const

/** The internal listener's ports and URLs (the internal-listener change adds them to the config schemas). */
const INTERNAL_PORTS: Record<string, number> = { identity: 3101, directory: 3102, audit: 3103, gateway: 9080 }
const INTERNAL_ENV = ['INTERNAL_PORT', 'IDENTITY_INTERNAL_URL', 'DIRECTORY_INTERNAL_URL', 'AUDIT_INTERNAL_URL']

/** Every variable a Roster process reads, from the services' own config schemas; nothing else belongs in the manifests. */
const KNOWN_ENV = new Set([
  ...[IdentityConfigSchema, DirectoryConfigSchema, AuditConfigSchema, GatewayConfigSchema].flatMap((schema) =>
    Object.keys(schema.properties)
  ),
  ...INTERNAL_ENV
])

function yamlFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) return entry.name === 'secrets' ? [] : yamlFiles(path)
    return /\.ya?ml$/.test(entry.name) ? [path] : []
  })
}

function parse(text: string, where: string): Doc[] {
  return parseAllDocuments(text).flatMap((document) => {
    if (document.errors.length > 0) throw new Error(`${where}: ${document.errors[0]?.message}`)
    const value = document.toJS() as Doc | null
    return value === null ? [] : [value]
  })
}

const parseFile = (file: string) => parse(readFileSync(file, 'utf8'), relative(REPO_ROOT, file))

/** Paths a kustomization names (resources, components, patches, generators) that must exist beside it. */
function referencedPaths(kustomization: Doc): string[] {
  const paths: string[] = [...(kustomization.resources ?? []), ...(kustomization.components ?? [])]
  for (const patch of kustomization.patches ?? []) if (typeof patch.path === 'string') paths.push(patch.path)
  for (const generator of [...(kustomization.configMapGenerator ?? []), ...(kustomization.secretGenerator ?? [])]) {
    for (const file of [...(generator.files ?? []), ...(generator.envs ?? [])])
      paths.push(String(file).replace(/^[^=]*=/, ''))
  }
  return paths.filter((path) => !/^[a-z]+:\/\//.test(path) && !path.startsWith('github.com/'))
}

function matches(selector: Record<string, string> | undefined, labels: Record<string, string>): boolean {
  if (selector === undefined || Object.keys(selector).length === 0) return false
  return Object.entries(selector).every(([key, value]) => labels[key] === value)
}

function selects(selector: Doc | undefined, labels: Record<string, string>): boolean {
  if (selector === undefined) return false
  const byLabels = selector.matchLabels === undefined || matches(selector.matchLabels, labels)
  const byExpressions = ((selector.matchExpressions ?? []) as Doc[]).every((expression) => {
    const value = labels[expression.key]
    if (expression.operator === 'In') return expression.values.includes(value)
    if (expression.operator === 'NotIn') return !expression.values.includes(value)
    if (expression.operator === 'Exists') return value !== undefined
    return value === undefined
  })
  return byLabels && byExpressions
}

/** A probe's or Service's port, given by number or by the container port's name. */
function resolvePort(port: number | string | undefined, container: Doc): number | undefined {
  if (typeof port === 'number') return port
  return (container.ports as Doc[]).find((candidate) => candidate.name === port)?.containerPort
}

// ------------------------------------------------------------------ rendering

const kubectl = ['/usr/bin/kubectl', '/usr/local/bin/kubectl'].find((path) => existsSync(path))
const rendered = new Map<string, Doc[]>()

/** The local overlay's Secrets come from files its documented command makes (git-ignored, kept when present). */
function makeLocalSecrets(): void {
  execFileSync(join(K8S, 'overlays/local/make-secrets.sh'), { stdio: 'ignore' })
}

async function render(target: string): Promise<Doc[]> {
  const cached = rendered.get(target)
  if (cached) return cached
  if (kubectl === undefined) throw new Error('kubectl is needed to render the overlays')
  if (target === 'overlays/local') makeLocalSecrets()
  const { stdout } = await promisify(execFile)(kubectl, ['kustomize', join(K8S, target)], {
    maxBuffer: 16 * 1024 * 1024
  })
  const docs = parse(stdout, target)
  rendered.set(target, docs)
  return docs
}

const ofKind = (docs: Doc[], kind: string) => docs.filter((doc) => doc.kind === kind)
const named = (docs: Doc[], kind: string, name: string) =>
  docs.find((doc) => doc.kind === kind && doc.metadata.name === name)
const noKubectl = kubectl === undefined && 'kubectl is not installed'

// ------------------------------------------------------------------ files and kustomizations

t.test('every YAML file under deploy/k8s parses, and each document has apiVersion and kind', async (t) => {
  const files = yamlFiles(K8S)
  t.ok(files.length >= 15)
  for (const file of files) {
    if (file.endsWith('nats-values.yaml')) continue // Helm values, not a manifest
    const docs = parseFile(file)
    t.ok(docs.length > 0, `${relative(K8S, file)} holds documents`)
    for (const doc of docs)
      t.ok(doc.apiVersion && doc.kind, `${relative(K8S, file)}: ${doc.kind ?? '?'} has apiVersion and kind`)
  }
})

t.test('every kustomization lists files that exist, and every file is used', async (t) => {
  makeLocalSecrets()
  const kustomizations = yamlFiles(K8S).filter((file) => file.endsWith('kustomization.yaml'))
  t.same(kustomizations.map((file) => relative(K8S, file)).sort(), [
    'base/kustomization.yaml',
    'components/monitoring/kustomization.yaml',
    'overlays/local/kustomization.yaml',
    'overlays/production/kustomization.yaml'
  ])
  const used = new Set<string>()
  for (const file of kustomizations) {
    const [kustomization] = parseFile(file)
    t.ok(
      ['Kustomization', 'Component'].includes(kustomization?.kind),
      `${relative(K8S, file)} is a ${kustomization?.kind}`
    )
    for (const path of referencedPaths(kustomization ?? {})) {
      const full = resolve(dirname(file), path)
      used.add(full)
      t.ok(existsSync(full), `${relative(K8S, file)} -> ${path} exists`)
    }
  }
  for (const file of yamlFiles(K8S).filter(
    (path) => !path.endsWith('kustomization.yaml') && !path.endsWith('nats-values.yaml')
  )) {
    t.ok(used.has(file), `${relative(K8S, file)} is part of a kustomization`)
  }
})

// ------------------------------------------------------------------ strict schema validation

t.test('the validator refuses what a strict API server refuses', async (t) => {
  const deployment = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'x' },
    spec: {
      selector: { matchLabels: { app: 'x' } },
      template: {
        metadata: { labels: { app: 'x' } },
        spec: {
          containers: [{ name: 'x', image: 'x:1', livenessProbe: { httpGet: { path: '/health', port: 'http' } } }]
        }
      }
    }
  }
  t.same(validateObject(deployment), [], 'a valid Deployment passes')
  const misspelled = structuredClone(deployment) as Doc
  const container = misspelled.spec.template.spec.containers[0]
  container.livenesProbe = container.livenessProbe
  delete container.livenessProbe
  t.match(validateObject(misspelled), [/livenesProbe: unknown field/], 'a misspelled livenesProbe fails')
  const nested = structuredClone(deployment) as Doc
  nested.spec.template.spec.containers[0].livenessProbe.httpGet.paht = '/x'
  t.match(validateObject(nested), [/httpGet\/paht: unknown field/], 'an unknown field deep down fails')
  const wrongType = structuredClone(deployment) as Doc
  wrongType.spec.replicas = 'two'
  t.ok(validateObject(wrongType).length > 0, 'a string where an integer belongs fails')
  const missing = structuredClone(deployment) as Doc
  delete missing.spec.template.spec.containers[0].name
  t.ok(validateObject(missing).length > 0, 'a container without a name fails')
  t.match(
    validateObject({ apiVersion: 'apps/v1', kind: 'Deploymnet', metadata: { name: 'x' } }),
    [/no schema known/],
    'an unknown kind fails'
  )
  t.match(
    validateObject({
      apiVersion: 'monitoring.coreos.com/v1',
      kind: 'ServiceMonitor',
      metadata: { name: 'x' },
      spec: { selector: {}, endpoints: [{ port: 'internal', intervall: '30s' }] }
    }),
    [/intervall: unknown field/],
    'a CRD field misspelled fails'
  )
  t.match(
    validateObject({
      apiVersion: 'postgresql.cnpg.io/v1',
      kind: 'Pooler',
      metadata: { name: 'x' },
      spec: { cluster: { name: 'c' }, type: 'rw', pgbouncer: { poolMode: 'statement' } }
    }),
    [/poolMode.*not one of/],
    'a CRD enum value out of range fails'
  )
})

for (const target of ['base', ...OVERLAYS.map((overlay) => `overlays/${overlay}`)]) {
  t.test(
    `${target}: every rendered object is valid against its schema, unknown fields refused`,
    { skip: noKubectl },
    async (t) => {
      const docs = await render(target)
      t.ok(docs.length > 20)
      for (const doc of docs) t.same(validateObject(doc), [], `${doc.kind} ${doc.metadata?.name}`)
    }
  )
}

// ------------------------------------------------------------------ the services

for (const overlay of OVERLAYS) {
  for (const service of SERVICE_NAMES) {
    t.test(
      `${overlay}: ${service} is left to its HPA, probed on the right ports, bounded, non-root, with Service, PDB and HPA`,
      { skip: noKubectl },
      async (t) => {
        const docs = await render(`overlays/${overlay}`)
        const name = `roster-${service}`
        const deployment = named(docs, 'Deployment', name)
        if (deployment === undefined) throw new Error(`no Deployment ${name}`)
        t.equal(deployment.spec.replicas, undefined, 'no replicas: the HPA owns the count')
        t.equal(deployment.metadata.namespace, 'roster')
        const template = deployment.spec.template
        const labels = template.metadata.labels as Record<string, string>
        t.ok(selects(deployment.spec.selector, labels), 'the Deployment selects its own pods')
        const pod = template.spec
        const [container] = pod.containers as Doc[]
        if (container === undefined) throw new Error('no container')

        const port = DEFAULT_PORTS[service]
        const internal = INTERNAL_PORTS[service]!
        t.equal(resolvePort('http', container), port, `container port http ${port}`)
        t.equal(resolvePort('internal', container), internal, `container port internal ${internal}`)
        const env = Object.fromEntries((container.env as Doc[]).map((variable) => [variable.name, variable]))
        t.same(env.PORT, { name: 'PORT', value: String(port) }, 'PORT matches')
        t.same(env.INTERNAL_PORT, { name: 'INTERNAL_PORT', value: String(internal) }, 'INTERNAL_PORT matches')
        t.equal(container.readinessProbe?.httpGet?.path, '/ready')
        t.equal(
          resolvePort(container.readinessProbe.httpGet.port, container),
          internal,
          'readiness on the internal port'
        )
        t.equal(container.livenessProbe?.httpGet?.path, '/health')
        t.equal(
          resolvePort(container.livenessProbe.httpGet.port, container),
          port,
          'liveness /health on the public port'
        )
        t.equal(container.startupProbe?.httpGet?.path, '/health')
        t.equal(container.command, undefined, "the image's ENTRYPOINT (node --conditions=roster-dist) is kept")
        t.equal(container.args, undefined, "the image's CMD (dist/server.js) is kept")

        for (const kind of ['requests', 'limits']) {
          t.ok(
            container.resources?.[kind]?.cpu && container.resources?.[kind]?.memory,
            `resources.${kind} has cpu and memory`
          )
        }
        t.equal(pod.securityContext?.runAsNonRoot, true, 'runAsNonRoot')
        t.ok(pod.securityContext?.runAsUser > 0, 'a non-zero runAsUser')
        t.equal(container.securityContext?.allowPrivilegeEscalation, false)
        t.equal(container.securityContext?.readOnlyRootFilesystem, true)
        t.same(container.securityContext?.capabilities?.drop, ['ALL'])
        const preStop = container.lifecycle?.preStop?.exec?.command as string[] | undefined
        t.equal(preStop?.[0], 'sleep', 'preStop waits for endpoints to drop the pod')
        t.ok(
          pod.terminationGracePeriodSeconds > Number(preStop?.[1] ?? 0) + 10,
          'grace period covers preStop and the graceful close'
        )
        t.ok(
          ((pod.topologySpreadConstraints ?? []) as Doc[]).some(
            (constraint) =>
              constraint.topologyKey === 'kubernetes.io/hostname' && selects(constraint.labelSelector, labels)
          ),
          'spread over nodes'
        )

        const serviceDoc = ofKind(docs, 'Service').find((doc) => matches(doc.spec.selector, labels))
        if (serviceDoc === undefined) throw new Error(`no Service selects ${name}`)
        t.equal(serviceDoc.spec.type ?? 'ClusterIP', 'ClusterIP')
        const servicePorts = Object.fromEntries((serviceDoc.spec.ports as Doc[]).map((entry) => [entry.name, entry]))
        t.equal(
          resolvePort(servicePorts.http?.targetPort, container),
          port,
          'Service port http targets the public port'
        )
        t.equal(
          resolvePort(servicePorts.internal?.targetPort, container),
          internal,
          'Service port internal targets the internal port'
        )

        const pdb = ofKind(docs, 'PodDisruptionBudget').find((doc) => selects(doc.spec.selector, labels))
        t.ok(pdb?.spec.minAvailable >= 1, 'a PodDisruptionBudget keeps one pod')
        const hpa = ofKind(docs, 'HorizontalPodAutoscaler').find((doc) => doc.spec.scaleTargetRef.name === name)
        t.equal(hpa?.spec.scaleTargetRef.kind, 'Deployment', 'an HPA targets the Deployment')
        t.ok(hpa?.spec.minReplicas >= 2, 'HPA minReplicas >= 2')
        t.ok(hpa?.spec.maxReplicas >= hpa?.spec.minReplicas, 'HPA maxReplicas >= minReplicas')
        t.ok(hpa?.spec.minReplicas > (pdb?.spec.minAvailable ?? 0), 'a node drain can always evict one pod')
      }
    )
  }
}

for (const overlay of OVERLAYS) {
  t.test(
    `${overlay}: one migration Job per service, same image, migrations off in the pods`,
    { skip: noKubectl },
    async (t) => {
      const docs = await render(`overlays/${overlay}`)
      const config = named(docs, 'ConfigMap', 'roster-config')
      t.equal(config?.data.MIGRATE_ON_START, 'false', 'the services start with migrations off')
      for (const service of BACKEND_NAMES) {
        const job = named(docs, 'Job', `roster-${service}-migrate`)
        const deployment = named(docs, 'Deployment', `roster-${service}`)
        if (job === undefined || deployment === undefined) throw new Error(`no Job or Deployment for ${service}`)
        const [jobContainer] = job.spec.template.spec.containers as Doc[]
        const [container] = deployment.spec.template.spec.containers as Doc[]
        t.equal(jobContainer?.image, container?.image, `${service}: the Job runs the Deployment's image`)
        t.same(
          jobContainer?.args,
          ['dist/migrate.js'],
          `${service}: node dist/migrate.js (ENTRYPOINT node --conditions=roster-dist)`
        )
        t.equal(jobContainer?.command, undefined, `${service}: the image's ENTRYPOINT is kept`)
        const jobEnv = Object.fromEntries((jobContainer?.env as Doc[]).map((variable) => [variable.name, variable]))
        const podEnv = Object.fromEntries((container?.env as Doc[]).map((variable) => [variable.name, variable]))
        t.same(jobEnv.DATABASE_URL, podEnv.DATABASE_URL, `${service}: same database`)
        t.same(jobEnv.DB_SCHEMA, podEnv.DB_SCHEMA, `${service}: same schema`)
        t.ok(['OnFailure', 'Never'].includes(job.spec.template.spec.restartPolicy), `${service}: restartPolicy`)
        t.ok(job.spec.backoffLimit >= 1 && job.spec.activeDeadlineSeconds > 0, `${service}: retried, bounded in time`)
        t.equal(job.spec.template.spec.securityContext?.runAsNonRoot, true, `${service}: the Job runs non-root`)
        t.equal(jobContainer?.securityContext?.readOnlyRootFilesystem, true, `${service}: read-only`)
      }
    }
  )
}

// ------------------------------------------------------------------ connection budget

interface Budget {
  usable: number
  demand: number
  lines: string[]
}

/** Connections the services may open at their HPA maxima plus surge, against the budget's usable share. */
function connectionBudget(docs: Doc[]): Budget {
  const budget = named(docs, 'ConfigMap', 'roster-connection-budget')?.data
  if (budget === undefined) throw new Error('no roster-connection-budget ConfigMap')
  const usable =
    Number(budget.max_connections) - Number(budget.superuser_reserved_connections) - Number(budget.reserved_connections)
  const surge = Number(budget.surge_per_deployment)
  const lines: string[] = []
  let demand = 0
  for (const deployment of ofKind(docs, 'Deployment').filter((doc) => doc.metadata.name.startsWith('roster-'))) {
    const env = (deployment.spec.template.spec.containers[0].env ?? []) as Doc[]
    if (!env.some((variable) => variable.name === 'DATABASE_URL')) continue
    const pool = Number(env.find((variable) => variable.name === 'DB_POOL_MAX')?.value)
    const hpa = ofKind(docs, 'HorizontalPodAutoscaler').find(
      (doc) => doc.spec.scaleTargetRef.name === deployment.metadata.name
    )
    const pods =
      Number(hpa?.spec.maxReplicas) + Math.max(surge, Number(deployment.spec.strategy?.rollingUpdate?.maxSurge ?? 1))
    demand += pods * pool
    lines.push(`${deployment.metadata.name}: ${pods} pods x ${pool}`)
  }
  return { usable, demand, lines }
}

for (const overlay of OVERLAYS) {
  t.test(
    `${overlay}: the pools fit the stated connection budget at the HPA maxima plus surge`,
    { skip: noKubectl },
    async (t) => {
      const docs = await render(`overlays/${overlay}`)
      const budget = connectionBudget(docs)
      t.equal(budget.lines.length, 3, 'three services hold database pools')
      t.ok(budget.demand <= budget.usable, `${budget.lines.join(', ')} = ${budget.demand} <= ${budget.usable}`)
      for (const deployment of ofKind(docs, 'Deployment').filter((doc) =>
        BACKEND_NAMES.some((s) => doc.metadata.name === `roster-${s}`)
      )) {
        const env = deployment.spec.template.spec.containers[0].env as Doc[]
        t.ok(
          Number(env.find((variable) => variable.name === 'DB_POOL_MAX')?.value) >= 2,
          `${deployment.metadata.name}: DB_POOL_MAX set`
        )
      }
      const maxConnections = named(docs, 'ConfigMap', 'roster-connection-budget')?.data.max_connections
      if (overlay === 'local') {
        const postgres = named(docs, 'Deployment', 'postgres')?.spec.template.spec.containers[0]
        t.ok(
          (postgres?.args as string[]).join(' ').includes(`max_connections=${maxConnections}`),
          'the local PostgreSQL has the budget’s max_connections'
        )
      } else {
        const cluster = ofKind(docs, 'Cluster')[0]
        t.equal(
          cluster?.spec.postgresql.parameters.max_connections,
          maxConnections,
          'the CloudNativePG Cluster has the budget’s max_connections'
        )
        const pooler = ofKind(docs, 'Pooler')[0]
        t.equal(pooler?.spec.cluster.name, cluster?.metadata.name, 'the Pooler fronts the Cluster')
        const parameters = pooler?.spec.pgbouncer.parameters ?? {}
        t.ok(Number(parameters.max_client_conn) >= budget.demand, 'PgBouncer admits every pod connection')
        t.ok(
          Number(pooler?.spec.instances) * Number(parameters.default_pool_size) <= budget.usable,
          'PgBouncer’s server connections fit the budget'
        )
        t.equal(
          pooler?.spec.pgbouncer.poolMode,
          'session',
          'session pooling: search_path and advisory locks are per session'
        )
      }
    }
  )
}

t.test('the budget check fails when an HPA maximum outgrows it', { skip: noKubectl }, async (t) => {
  const docs = structuredClone(await render('overlays/production'))
  const hpa = docs.find((doc) => doc.kind === 'HorizontalPodAutoscaler' && doc.metadata.name === 'roster-identity')
  hpa!.spec.maxReplicas = 40
  const budget = connectionBudget(docs)
  t.ok(budget.demand > budget.usable, `${budget.demand} > ${budget.usable}`)
})

// ------------------------------------------------------------------ environment, secrets, images

for (const overlay of OVERLAYS) {
  t.test(
    `${overlay}: only variables the services read, no secret inline, images immutable`,
    { skip: noKubectl },
    async (t) => {
      const docs = await render(`overlays/${overlay}`)
      let checked = 0
      for (const doc of docs.filter(
        (candidate) => ['Deployment', 'Job'].includes(candidate.kind) && candidate.metadata.name.startsWith('roster-')
      )) {
        for (const container of doc.spec.template.spec.containers as Doc[]) {
          for (const variable of (container.env ?? []) as Doc[]) {
            checked++
            t.ok(KNOWN_ENV.has(variable.name), `${doc.metadata.name}: ${variable.name} is a known variable`)
            if (/DATABASE_URL|PASSWORD|PRIVATE_KEY$/.test(variable.name))
              t.ok(variable.valueFrom?.secretKeyRef, `${doc.metadata.name}: ${variable.name} comes from a Secret`)
          }
          for (const source of (container.envFrom ?? []) as Doc[]) {
            t.notOk(source.secretRef, `${doc.metadata.name}: no Secret is spread into the environment wholesale`)
            const configMap = named(docs, 'ConfigMap', source.configMapRef?.name)
            t.ok(configMap, `${doc.metadata.name}: ConfigMap ${source.configMapRef?.name} exists`)
            for (const key of Object.keys(configMap?.data ?? {}))
              t.ok(KNOWN_ENV.has(key), `roster-config: ${key} is a known variable`)
          }
          const image = container.image as string
          const tag = /:([^/@]+)$/.exec(image)?.[1]
          t.ok(
            /@sha256:[0-9a-f]{64}$/.test(image) || /^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/.test(tag ?? ''),
            `${doc.metadata.name}: ${image} is a digest or a version tag`
          )
          t.notOk(['latest', 'dev'].includes(tag ?? ''), `${doc.metadata.name}: no mutable tag`)
          if (overlay === 'local')
            t.equal(container.imagePullPolicy, 'Never', `${doc.metadata.name}: loaded images are never pulled`)
          else
            t.notOk(container.imagePullPolicy === 'Never', `${doc.metadata.name}: production pulls from its registry`)
        }
      }
      t.ok(checked > 20)
      // Every Secret a pod names exists in the overlay (local) or is listed as a prerequisite (production).
      const secretNames = new Set(ofKind(docs, 'Secret').map((doc) => doc.metadata.name))
      const referenced = new Set(
        JSON.stringify(docs.filter((doc) => doc.kind !== 'Secret')).match(
          /"(secretName|name)":"(roster-[a-z-]+(-[a-z0-9]{10})?)"/g
        ) ?? []
      )
      t.ok(referenced.size > 0)
      if (overlay === 'local') {
        for (const key of ['roster-database', 'roster-jwt', 'roster-admin', 'roster-postgres']) {
          t.ok(
            [...secretNames].some((name) => name.startsWith(`${key}-`)),
            `the overlay generates Secret ${key}`
          )
        }
        const deployments = JSON.stringify(ofKind(docs, 'Deployment'))
        for (const name of secretNames)
          t.ok(deployments.includes(`"${name}"`), `generated Secret ${name} is referenced by its hashed name`)
      } else {
        const readme = readFileSync(join(REPO_ROOT, 'deploy', 'README.md'), 'utf8')
        for (const key of ['roster-database', 'roster-jwt', 'roster-admin'])
          t.match(readme, key, `deploy/README.md says how to create ${key}`)
      }
    }
  )
}

t.test(
  'local: applies on a fresh cluster: namespaces created, NATS and PostgreSQL included, URLs point at them',
  { skip: noKubectl },
  async (t) => {
    const docs = await render('overlays/local')
    const namespaces = new Set(ofKind(docs, 'Namespace').map((doc) => doc.metadata.name))
    for (const doc of docs.filter((candidate) => candidate.kind !== 'Namespace')) {
      t.ok(
        namespaces.has(doc.metadata.namespace),
        `${doc.kind} ${doc.metadata.name} is in a namespace the overlay creates (${doc.metadata.namespace})`
      )
    }
    t.equal(named(docs, 'Namespace', 'roster')?.metadata.labels['pod-security.kubernetes.io/enforce'], 'restricted')
    const serviceHost = (url: string) => {
      const host = new URL(url).hostname.split('.')
      return { name: host[0], namespace: host[1] ?? 'roster' }
    }
    const exists = ({ name, namespace }: { name?: string; namespace?: string }) =>
      docs.some((doc) => doc.kind === 'Service' && doc.metadata.name === name && doc.metadata.namespace === namespace)
    const config = named(docs, 'ConfigMap', 'roster-config')?.data as Record<string, string>
    t.ok(exists(serviceHost(config.NATS_URL!)), `NATS_URL ${config.NATS_URL} names a Service of the overlay`)
    for (const key of [
      'IDENTITY_URL',
      'DIRECTORY_URL',
      'AUDIT_URL',
      'IDENTITY_INTERNAL_URL',
      'DIRECTORY_INTERNAL_URL',
      'AUDIT_INTERNAL_URL'
    ]) {
      const url = new URL(config[key]!)
      const service = named(docs, 'Service', url.hostname)
      t.ok(
        service && (service.spec.ports as Doc[]).some((port) => port.port === Number(url.port)),
        `${key} ${config[key]} is a Service port`
      )
    }
    const databaseUrl = readFileSync(join(K8S, 'overlays/local/secrets/database-url'), 'utf8')
    t.ok(
      exists(serviceHost(databaseUrl.replace(/^postgres:\/\/[^@]*@/, 'http://'))),
      'DATABASE_URL names the overlay’s PostgreSQL Service'
    )
    t.ok(
      readFileSync(join(K8S, 'overlays/local/.gitignore'), 'utf8').includes('secrets/'),
      'the generated secrets stay out of git'
    )
  }
)

// ------------------------------------------------------------------ network policies and monitoring

for (const overlay of OVERLAYS) {
  t.test(
    `${overlay}: network policies: gateway public, services' public port from the gateway, internal ports from Roster and Prometheus`,
    { skip: noKubectl },
    async (t) => {
      const docs = await render(`overlays/${overlay}`)
      const policies = ofKind(docs, 'NetworkPolicy')
      const pods = ofKind(docs, 'Deployment')
        .filter((doc) => doc.metadata.name.startsWith('roster-'))
        .map((doc) => ({
          name: doc.metadata.name as string,
          labels: doc.spec.template.metadata.labels as Record<string, string>,
          container: doc.spec.template.spec.containers[0]
        }))
      const denyAll = policies.find(
        (policy) => policy.spec.ingress === undefined && policy.spec.policyTypes?.includes('Ingress')
      )
      t.ok(denyAll, 'a default-deny policy exists')
      const gatewayLabels = pods.find((pod) => pod.name === 'roster-gateway')!.labels
      const prometheusNamespace = { 'kubernetes.io/metadata.name': 'monitoring' }

      /** Who may reach a pod's named port: 'anyone', or the peers of the rules that cover it. */
      const peersFor = (labels: Record<string, string>, portName: string): (Doc | 'anyone')[] =>
        policies
          .filter((policy) => selects(policy.spec.podSelector, labels))
          .flatMap((policy) => (policy.spec.ingress ?? []) as Doc[])
          .filter((rule) => rule.ports === undefined || (rule.ports as Doc[]).some((port) => port.port === portName))
          .flatMap((rule): (Doc | 'anyone')[] =>
            rule.from === undefined || rule.from.length === 0 ? ['anyone'] : (rule.from as Doc[])
          )

      for (const { name, labels } of pods) {
        t.ok(selects(denyAll?.spec.podSelector, labels), `default deny covers ${name}`)
        const publicPeers = peersFor(labels, 'http')
        const internalPeers = peersFor(labels, 'internal')
        if (name === 'roster-gateway') {
          t.ok(publicPeers.includes('anyone'), 'the gateway’s public port is open to the ingress controller')
        } else {
          t.notOk(publicPeers.includes('anyone'), `${name}: public port closed to the outside`)
          t.ok(publicPeers.length > 0, `${name}: public port reachable by someone`)
          for (const peer of publicPeers.filter((candidate): candidate is Doc => candidate !== 'anyone')) {
            t.ok(
              !peer.namespaceSelector && !peer.ipBlock && selects(peer.podSelector, gatewayLabels),
              `${name}: public port only from the gateway`
            )
            t.notOk(
              pods
                .filter((other) => other.name !== 'roster-gateway')
                .some((other) => selects(peer.podSelector, other.labels)),
              `${name}: no other service reaches its public port`
            )
          }
          t.ok(
            internalPeers.some(
              (peer) =>
                peer !== 'anyone' &&
                selects(peer.podSelector, pods.find((pod) => pod.name === 'roster-identity')!.labels)
            ),
            `${name}: internal port reachable from the other services`
          )
        }
        t.notOk(internalPeers.includes('anyone'), `${name}: internal port closed to the outside`)
        t.ok(
          internalPeers.some(
            (peer) =>
              peer !== 'anyone' &&
              peer.namespaceSelector &&
              matches(peer.namespaceSelector.matchLabels, prometheusNamespace) &&
              !peer.podSelector
          ),
          `${name}: Prometheus’ namespace may scrape the internal port`
        )
      }
    }
  )
}

t.test(
  'production: ServiceMonitor scrapes the internal port of every Roster Service; alert rules use exported metrics',
  { skip: noKubectl },
  async (t) => {
    const docs = await render('overlays/production')
    const [monitor] = ofKind(docs, 'ServiceMonitor')
    if (monitor === undefined) throw new Error('no ServiceMonitor')
    const services = ofKind(docs, 'Service').filter((doc) => selects(monitor.spec.selector, doc.metadata.labels ?? {}))
    t.same(
      services.map((doc) => doc.metadata.name).sort(),
      SERVICE_NAMES.map((name) => `roster-${name}`).sort(),
      'it selects the four Services'
    )
    for (const endpoint of monitor.spec.endpoints as Doc[]) {
      t.equal(endpoint.path, '/metrics')
      for (const service of services)
        t.ok(
          (service.spec.ports as Doc[]).some((port) => port.name === endpoint.port),
          `${service.metadata.name} has port ${endpoint.port}`
        )
      t.equal(endpoint.port, 'internal', 'scraped on the internal port')
    }

    const rules = ofKind(docs, 'PrometheusRule').flatMap((doc) =>
      (doc.spec.groups as Doc[]).flatMap((group) => group.rules as Doc[])
    )
    const alerts = rules.map((rule) => rule.alert)
    for (const alert of [
      'RosterHigh5xxRate',
      'RosterConsumerLag',
      'RosterOutboxBacklog',
      'RosterParkedEvents',
      'RosterNotReady'
    ])
      t.ok(alerts.includes(alert), `alert ${alert}`)
    const kitSources = ['metrics.ts', 'ops-metrics.ts']
      .map((file) => readFileSync(join(REPO_ROOT, 'packages/service-kit/src/plugins', file), 'utf8'))
      .join('\n')
    for (const rule of rules) {
      for (const metric of (rule.expr as string).match(/\b(roster_[a-z_]+|http_[a-z_]+)/g) ?? []) {
        const base = metric.replace(/_(count|sum|bucket)$/, '')
        t.ok(kitSources.includes(`'${base}'`), `${rule.alert}: ${metric} is exported by the kit`)
      }
    }
  }
)

t.test(
  'production: TLS ingress, a 3-instance CloudNativePG Cluster, NATS values for a 3-node JetStream cluster',
  { skip: noKubectl },
  async (t) => {
    const docs = await render('overlays/production')
    const ingress = named(docs, 'Ingress', 'roster')
    const hosts = (ingress?.spec.rules as Doc[]).map((rule) => rule.host)
    t.ok(
      (ingress?.spec.tls as Doc[]).some((tls) => hosts.every((host) => tls.hosts.includes(host)) && tls.secretName),
      'every host has TLS'
    )
    t.equal(ofKind(docs, 'Cluster')[0]?.spec.instances, 3)
    const [values] = parseFile(join(K8S, 'overlays/production/nats-values.yaml'))
    t.equal(values?.config.cluster.enabled, true)
    t.equal(values?.config.cluster.replicas, 3)
    t.equal(values?.config.jetstream.enabled, true)
    t.equal(values?.config.jetstream.fileStore.pvc.enabled, true, 'JetStream on persistent volumes')
    const config = named(docs, 'ConfigMap', 'roster-config')?.data
    t.match(config?.NATS_URL, /^nats:\/\/nats\.nats\.svc/, 'NATS_URL names the chart’s Service')
  }
)

// ---------------------------------------------------------------- Dockerfile

const INSTRUCTIONS = new Set([
  'FROM',
  'RUN',
  'CMD',
  'LABEL',
  'EXPOSE',
  'ENV',
  'ADD',
  'COPY',
  'ENTRYPOINT',
  'VOLUME',
  'USER',
  'WORKDIR',
  'ARG',
  'ONBUILD',
  'STOPSIGNAL',
  'HEALTHCHECK',
  'SHELL',
  'MAINTAINER'
])

interface Instruction {
  line: number
  keyword: string
  args: string
}

function parseDockerfile(text: string): Instruction[] {
  const instructions: Instruction[] = []
  let pending: Instruction | undefined
  text.split('\n').forEach((raw, index) => {
    const line = raw.trimEnd()
    if (pending === undefined) {
      if (line.trim() === '' || line.trimStart().startsWith('#')) return
      const match = /^\s*([A-Za-z]+)\s+(.*)$/.exec(line)
      if (match === null) throw new Error(`Dockerfile line ${index + 1}: not an instruction: ${line}`)
      pending = { line: index + 1, keyword: match[1]!.toUpperCase(), args: match[2]! }
    } else if (line.trimStart().startsWith('#')) {
      return
    } else {
      pending.args += ` ${line.trim()}`
    }
    if (pending.args.endsWith('\\')) {
      pending.args = pending.args.slice(0, -1).trimEnd()
    } else {
      instructions.push(pending)
      pending = undefined
    }
  })
  if (pending !== undefined) throw new Error('Dockerfile ends inside a continued line')
  return instructions
}

interface Stage {
  name: string | undefined
  from: string
  instructions: Instruction[]
}

function stagesOf(instructions: Instruction[]): Stage[] {
  const stages: Stage[] = []
  for (const instruction of instructions) {
    if (instruction.keyword === 'FROM') {
      const [from, as, name] = instruction.args.replace(/--platform=\S+\s+/, '').split(/\s+/)
      stages.push({ from: from!, name: as?.toUpperCase() === 'AS' ? name : undefined, instructions: [] })
    } else {
      stages.at(-1)?.instructions.push(instruction)
    }
  }
  return stages
}

t.test('the Dockerfile compiles in its build stage and runs node on dist/ as non-root', async (t) => {
  const instructions = parseDockerfile(readFileSync(DOCKERFILE, 'utf8'))
  for (const instruction of instructions)
    t.ok(INSTRUCTIONS.has(instruction.keyword), `line ${instruction.line}: ${instruction.keyword}`)
  const stages = stagesOf(instructions)
  t.equal(stages.at(-1)?.from, '${SERVICE}', 'the image built is the stage SERVICE names')
  const byName = new Map(stages.flatMap((stage) => (stage.name === undefined ? [] : [[stage.name, stage] as const])))
  const chain = (stage: Stage): Instruction[] => {
    const parent = byName.get(stage.from)
    return [...(parent === undefined ? [] : chain(parent)), ...stage.instructions]
  }
  const build = byName.get('build')
  const buildRun =
    build?.instructions
      .filter((instruction) => instruction.keyword === 'RUN')
      .map((instruction) => instruction.args)
      .join('\n') ?? ''
  t.match(
    buildRun,
    /tsc --build "\$\{dir\}\/tsconfig\.build\.json"/,
    'the build stage compiles the service with tsc --build'
  )
  t.match(
    buildRun,
    /pnpm install --frozen-lockfile --prod --offline/,
    'the runtime files hold production dependencies only'
  )
  t.notMatch(buildRun, /apt-get|python3|g\+\+/, 'no compiler toolchain: bcrypt installs its prebuilt binary')
  t.equal(
    byName.get('runtime')?.from,
    '${BASE_IMAGE}',
    'runtime on the base image (node:20-slim unless ROSTER_BASE_IMAGE)'
  )
  t.ok(
    instructions.some((instruction) => instruction.keyword === 'ARG' && instruction.args === 'BASE_IMAGE=node:20-slim'),
    'the base defaults to node:20-slim'
  )

  for (const service of SERVICE_NAMES) {
    const stage = byName.get(service)
    if (stage === undefined) throw new Error(`no stage ${service}`)
    t.equal(stage.from, 'runtime')
    const effective = chain(stage)
    const last = (keyword: string) => effective.filter((instruction) => instruction.keyword === keyword).at(-1)?.args
    const user = last('USER')
    t.ok(user !== undefined && !/^(root|0)(:|$)/.test(user), `${service}: USER ${user} is not root`)
    t.equal(last('WORKDIR'), `/app/${SERVICE_DIRS[service]}`, `${service}: runs from its own folder`)
    t.same(JSON.parse(last('ENTRYPOINT') ?? 'null'), ['node', '--conditions=roster-dist'], `${service}: ENTRYPOINT`)
    t.same(JSON.parse(last('CMD') ?? 'null'), ['dist/server.js'], `${service}: CMD`)
    t.equal(
      last('EXPOSE'),
      `${DEFAULT_PORTS[service]} ${INTERNAL_PORTS[service]}`,
      `${service}: EXPOSE public and internal ports`
    )
    t.match(last('HEALTHCHECK') ?? '', /\/health/, `${service}: HEALTHCHECK on /health`)
    const manifest = JSON.parse(readFileSync(join(REPO_ROOT, SERVICE_DIRS[service], 'package.json'), 'utf8'))
    t.notOk(manifest.dependencies?.tsx, `${service}: tsx is a development dependency only`)
    t.ok(existsSync(join(REPO_ROOT, SERVICE_DIRS[service], 'tsconfig.build.json')), `${service}: tsconfig.build.json`)
    if (service !== 'gateway')
      t.ok(
        existsSync(join(REPO_ROOT, SERVICE_DIRS[service], 'src', 'migrate.ts')),
        `${service}: src/migrate.ts (the Job's dist/migrate.js)`
      )
  }
  for (const pkg of ['packages/contracts', 'packages/service-kit']) {
    const manifest = JSON.parse(readFileSync(join(REPO_ROOT, pkg, 'package.json'), 'utf8'))
    t.same(
      manifest.exports['.'],
      { 'roster-dist': './dist/index.js', default: './src/index.ts' },
      `${pkg}: dist/ under the roster-dist condition`
    )
  }
})

t.test(
  'every COPY source of the Dockerfile exists, and the context leaves out secrets, tests and build output',
  async (t) => {
    const copies = parseDockerfile(readFileSync(DOCKERFILE, 'utf8')).filter((instruction) =>
      ['COPY', 'ADD'].includes(instruction.keyword)
    )
    let checked = 0
    for (const copy of copies) {
      const words = copy.args.split(/\s+/)
      if (words.some((word) => word.startsWith('--from='))) continue
      for (const source of words.filter((word) => !word.startsWith('--')).slice(0, -1)) {
        checked++
        t.ok(existsSync(join(REPO_ROOT, source)), `line ${copy.line}: ${source} exists`)
      }
    }
    t.ok(checked >= 1, 'the COPY sources were found')
    const ignore = readFileSync(join(REPO_ROOT, 'deploy', 'docker', 'Dockerfile.dockerignore'), 'utf8').split('\n')
    for (const entry of ['.git', '**/node_modules', '.data', '**/dist', '**/test', '**/.env'])
      t.ok(ignore.includes(entry), `the build context leaves out ${entry}`)
  }
)
