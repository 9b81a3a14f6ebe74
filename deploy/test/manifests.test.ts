import { execFile } from 'node:child_process'
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { parseAllDocuments } from 'yaml'
import { DEFAULT_PORTS, REPO_ROOT, SERVICE_DIRS, SERVICE_NAMES } from '../local/system.js'
import { IdentityConfigSchema } from '../../services/identity/src/config.js'
import { DirectoryConfigSchema } from '../../services/directory/src/config.js'
import { AuditConfigSchema } from '../../services/audit/src/config.js'
import { GatewayConfigSchema } from '../../gateway/src/config.js'

// Static checks of deploy/k8s and deploy/docker: no cluster and no Docker engine run here.

type Doc = Record<string, any>
interface Manifest {
  file: string
  doc: Doc
}

const K8S = join(REPO_ROOT, 'deploy', 'k8s')
const BASE = join(K8S, 'base')
const DOCKERFILE = join(REPO_ROOT, 'deploy', 'docker', 'Dockerfile')

/** Every variable a Roster process reads, from the services' own config schemas; nothing else belongs in the manifests. */
const KNOWN_ENV = new Set(
  [IdentityConfigSchema, DirectoryConfigSchema, AuditConfigSchema, GatewayConfigSchema].flatMap((schema) => Object.keys(schema.properties))
)

function yamlFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) return yamlFiles(path)
    return /\.ya?ml$/.test(entry.name) ? [path] : []
  })
}

function parseFile(file: string): Doc[] {
  return parseAllDocuments(readFileSync(file, 'utf8')).flatMap((document) => {
    if (document.errors.length > 0) throw new Error(`${relative(REPO_ROOT, file)}: ${document.errors[0]?.message}`)
    const value = document.toJS() as Doc | null
    return value === null ? [] : [value]
  })
}

/** The resources a kustomization puts together, following resource directories (patches are not applied). */
function kustomizationResources(dir: string): Manifest[] {
  const [kustomization] = parseFile(join(dir, 'kustomization.yaml'))
  return ((kustomization?.resources ?? []) as string[]).flatMap((entry) => {
    const path = resolve(dir, entry)
    if (statSync(path).isDirectory()) return kustomizationResources(path)
    return parseFile(path).map((doc) => ({ file: relative(REPO_ROOT, path), doc }))
  })
}

/** Paths a kustomization names (resources, patches, generators) that must exist beside it. */
function referencedPaths(kustomization: Doc): string[] {
  const paths: string[] = [...(kustomization.resources ?? []), ...(kustomization.components ?? [])]
  for (const patch of kustomization.patches ?? []) if (typeof patch.path === 'string') paths.push(patch.path)
  paths.push(...(kustomization.patchesStrategicMerge ?? []))
  for (const generator of [...(kustomization.configMapGenerator ?? []), ...(kustomization.secretGenerator ?? [])]) {
    for (const file of [...(generator.files ?? []), ...(generator.envs ?? [])]) paths.push(String(file).replace(/^[^=]*=/, ''))
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
function resolvePort(port: number | string, container: Doc): number | undefined {
  if (typeof port === 'number') return port
  return (container.ports as Doc[]).find((candidate) => candidate.name === port)?.containerPort
}

const docs = kustomizationResources(BASE)
const ofKind = (kind: string) => docs.filter((manifest) => manifest.doc.kind === kind).map((manifest) => manifest.doc)

t.test('every YAML file under deploy/k8s parses, and each document has apiVersion and kind', async (t) => {
  const files = yamlFiles(K8S)
  t.ok(files.length >= 8)
  for (const file of files) {
    const parsed = parseFile(file)
    t.ok(parsed.length > 0, `${relative(K8S, file)} holds documents`)
    for (const doc of parsed)
      t.ok(doc.apiVersion && doc.kind, `${relative(K8S, file)}: ${doc.kind ?? '?'} has apiVersion and kind`)
  }
})

t.test('every kustomization lists files that exist', async (t) => {
  const kustomizations = yamlFiles(K8S).filter((file) => file.endsWith('kustomization.yaml'))
  t.same(kustomizations.map((file) => relative(K8S, file)).sort(), [
    'base/kustomization.yaml',
    'overlays/local/kustomization.yaml'
  ])
  for (const file of kustomizations) {
    const [kustomization] = parseFile(file)
    t.equal(kustomization?.kind, 'Kustomization')
    for (const path of referencedPaths(kustomization ?? {})) {
      t.ok(existsSync(resolve(dirname(file), path)), `${relative(K8S, file)} -> ${path} exists`)
    }
  }
  const listed = new Set(
    ((parseFile(join(BASE, 'kustomization.yaml'))[0]?.resources ?? []) as string[]).map((path) => resolve(BASE, path))
  )
  for (const file of yamlFiles(BASE).filter((path) => !path.endsWith('kustomization.yaml'))) {
    t.ok(listed.has(file), `base/${relative(BASE, file)} is part of the base`)
  }
})

for (const service of SERVICE_NAMES) {
  t.test(`${service}: two or more replicas, probed, bounded, non-root, with Service, PDB and HPA`, async (t) => {
    const name = `roster-${service}`
    const deployment = ofKind('Deployment').find((doc) => doc.metadata.name === name)
    if (deployment === undefined) throw new Error(`no Deployment ${name}`)
    t.ok(deployment.spec.replicas >= 2, 'replicas >= 2')
    const template = deployment.spec.template
    const labels = template.metadata.labels as Record<string, string>
    t.ok(selects(deployment.spec.selector, labels), 'the Deployment selects its own pods')
    const pod = template.spec
    const [container] = pod.containers as Doc[]
    if (container === undefined) throw new Error('no container')
    t.equal(container.image, `roster/${service}`, 'the image kustomize retags')

    const port = DEFAULT_PORTS[service]
    t.equal(resolvePort('http', container), port, `container port ${port}`)
    t.same(
      container.env.find((variable: Doc) => variable.name === 'PORT'),
      { name: 'PORT', value: String(port) },
      'PORT matches'
    )
    t.equal(container.readinessProbe?.httpGet?.path, '/ready')
    t.equal(resolvePort(container.readinessProbe.httpGet.port, container), port, 'readiness probe on the container port')
    t.equal(container.livenessProbe?.httpGet?.path, '/health')
    t.equal(resolvePort(container.livenessProbe.httpGet.port, container), port, 'liveness probe on the container port')

    for (const kind of ['requests', 'limits']) {
      t.ok(container.resources?.[kind]?.cpu && container.resources?.[kind]?.memory, `resources.${kind} has cpu and memory`)
    }
    t.equal(pod.securityContext?.runAsNonRoot, true, 'runAsNonRoot')
    t.ok(pod.securityContext?.runAsUser > 0, 'a non-zero runAsUser')
    t.equal(container.securityContext?.allowPrivilegeEscalation, false)
    t.equal(container.securityContext?.readOnlyRootFilesystem, true)
    t.same(container.securityContext?.capabilities?.drop, ['ALL'])

    const preStop = container.lifecycle?.preStop?.exec?.command as string[] | undefined
    t.equal(preStop?.[0], 'sleep', 'preStop waits for endpoints to drop the pod')
    t.ok(pod.terminationGracePeriodSeconds > Number(preStop?.[1] ?? 0) + 10, 'grace period covers preStop and the graceful close')
    const spread = (pod.topologySpreadConstraints ?? []) as Doc[]
    t.ok(
      spread.some(
        (constraint) => constraint.topologyKey === 'kubernetes.io/hostname' && selects(constraint.labelSelector, labels)
      ),
      'spread over nodes'
    )

    const serviceDoc = ofKind('Service').find((doc) => matches(doc.spec.selector, labels))
    if (serviceDoc === undefined) throw new Error(`no Service selects ${name}`)
    t.equal(serviceDoc.spec.type ?? 'ClusterIP', 'ClusterIP')
    t.equal(resolvePort(serviceDoc.spec.ports[0].targetPort, container), port, 'the Service targets the container port')

    const pdb = ofKind('PodDisruptionBudget').find((doc) => selects(doc.spec.selector, labels))
    t.ok(pdb, 'a PodDisruptionBudget covers the pods')
    t.ok(pdb?.spec.minAvailable >= 1, 'minAvailable >= 1')

    const hpa = ofKind('HorizontalPodAutoscaler').find((doc) => doc.spec.scaleTargetRef.name === name)
    t.equal(hpa?.spec.scaleTargetRef.kind, 'Deployment', 'an HPA targets the Deployment')
    t.ok(hpa?.spec.minReplicas >= 2, 'HPA minReplicas >= 2')
    t.ok(hpa?.spec.maxReplicas >= hpa?.spec.minReplicas, 'HPA maxReplicas >= minReplicas')
  })
}

t.test('the manifests set only environment variables the services read, and no secret inline', async (t) => {
  const all = yamlFiles(K8S).flatMap((file) => parseFile(file).map((doc) => ({ file: relative(K8S, file), doc })))
  const configMaps = new Map<string, string[]>()
  for (const { doc } of all) {
    if (doc.kind === 'ConfigMap')
      configMaps.set(doc.metadata.name, [...(configMaps.get(doc.metadata.name) ?? []), ...Object.keys(doc.data ?? {})])
  }
  let checked = 0
  for (const { file, doc } of all) {
    for (const container of (doc.spec?.template?.spec?.containers ?? []) as Doc[]) {
      for (const variable of (container.env ?? []) as Doc[]) {
        checked++
        t.ok(KNOWN_ENV.has(variable.name), `${file}: ${variable.name} is a known variable`)
        if (/DATABASE_URL|PASSWORD|PRIVATE_KEY$/.test(variable.name)) {
          t.ok(variable.valueFrom?.secretKeyRef, `${file}: ${variable.name} comes from a Secret`)
        }
      }
      for (const source of (container.envFrom ?? []) as Doc[]) {
        t.notOk(source.secretRef, `${file}: no Secret is spread into the environment wholesale`)
        const keys = configMaps.get(source.configMapRef?.name)
        t.ok(keys, `${file}: ConfigMap ${source.configMapRef?.name} exists`)
        for (const key of keys ?? [])
          t.ok(KNOWN_ENV.has(key), `ConfigMap ${source.configMapRef?.name}: ${key} is a known variable`)
      }
    }
  }
  t.ok(checked > 10)
})

t.test('the JWT key is a mounted Secret file at ROSTER_JWT_PRIVATE_KEY_FILE', async (t) => {
  const identity = ofKind('Deployment').find((doc) => doc.metadata.name === 'roster-identity')
  const pod = identity?.spec.template.spec
  const container = pod?.containers[0]
  const file = container?.env.find((variable: Doc) => variable.name === 'ROSTER_JWT_PRIVATE_KEY_FILE')?.value as string
  const mount = (container?.volumeMounts as Doc[]).find((candidate) => file.startsWith(`${candidate.mountPath}/`))
  t.ok(mount?.readOnly, 'mounted read-only')
  const volume = (pod?.volumes as Doc[]).find((candidate) => candidate.name === mount?.name)
  t.ok(volume?.secret?.secretName, 'from a Secret')
  t.ok(
    (volume?.secret?.items as Doc[]).some((item) => `${mount?.mountPath}/${item.path}` === file),
    'the file name matches'
  )
  for (const other of ofKind('Deployment').filter((doc) => doc.metadata.name !== 'roster-identity')) {
    t.notOk(JSON.stringify(other).includes('roster-jwt'), `${other.metadata.name} does not get the signing key`)
  }
})

t.test('network policies: only the gateway is reachable from outside', async (t) => {
  const policies = ofKind('NetworkPolicy')
  const podLabels = ofKind('Deployment').map((doc) => ({
    name: doc.metadata.name as string,
    labels: doc.spec.template.metadata.labels
  }))
  const denyAll = policies.find((policy) => policy.spec.ingress === undefined && policy.spec.policyTypes?.includes('Ingress'))
  t.ok(denyAll, 'a default-deny policy exists')
  for (const { name, labels } of podLabels) t.ok(selects(denyAll?.spec.podSelector, labels), `default deny covers ${name}`)

  const rosterPod = podLabels[0]?.labels as Record<string, string>
  for (const { name, labels } of podLabels) {
    const rules = policies
      .filter((policy) => selects(policy.spec.podSelector, labels))
      .flatMap((policy) => (policy.spec.ingress ?? []) as Doc[])
    const open = rules.some((rule) => rule.from === undefined || rule.from.length === 0)
    if (name === 'roster-gateway') {
      t.ok(open, 'the gateway accepts traffic from outside')
    } else {
      t.notOk(open, `${name} is closed to the outside`)
      for (const rule of rules) {
        for (const peer of rule.from as Doc[]) {
          t.ok(peer.podSelector && !peer.namespaceSelector && !peer.ipBlock, `${name} admits only pods of its namespace`)
          t.ok(selects(peer.podSelector, rosterPod), `${name} admits Roster pods`)
        }
      }
    }
  }
})

t.test('the gateway is a ClusterIP Service behind the Ingress', async (t) => {
  const gateway = ofKind('Service').find((doc) => doc.metadata.name === 'roster-gateway')
  t.equal(gateway?.spec.type, 'ClusterIP')
  const backends = ofKind('Ingress').flatMap((ingress) =>
    (ingress.spec.rules as Doc[]).flatMap((rule) => (rule.http.paths as Doc[]).map((path) => path.backend.service))
  )
  t.ok(backends.length > 0)
  for (const backend of backends) {
    t.equal(backend.name, 'roster-gateway')
    t.ok((gateway?.spec.ports as Doc[]).some((port) => port.name === backend.port.name || port.port === backend.port.number))
  }
  t.same(
    ofKind('Service')
      .filter((doc) => doc.spec.type !== 'ClusterIP')
      .map((doc) => doc.metadata.name),
    [],
    'no NodePort or LoadBalancer'
  )
})

const kubectl = ['/usr/bin/kubectl', '/usr/local/bin/kubectl'].find((path) => existsSync(path))

t.test(
  'kustomize builds the base and the local overlay',
  { skip: kubectl === undefined && 'kubectl is not installed' },
  async (t) => {
    if (kubectl === undefined) return
    const run = promisify(execFile)
    for (const target of ['base', 'overlays/local']) {
      const { stdout } = await run(kubectl, ['kustomize', join(K8S, target)])
      const built = parseAllDocuments(stdout).map((document) => document.toJS() as Doc)
      t.equal(built.filter((doc) => doc.kind === 'Deployment').length, 4, `${target}: four Deployments`)
      if (target === 'overlays/local') {
        t.ok(
          built.every((doc) => doc.kind === 'Namespace' || doc.metadata.namespace === 'roster'),
          'everything in namespace roster'
        )
        const images = built.filter((doc) => doc.kind === 'Deployment').map((doc) => doc.spec.template.spec.containers[0].image)
        t.ok(
          images.every((image: string) => image.startsWith('localhost:5001/roster/')),
          'images come from the local registry'
        )
      }
    }
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

t.test('the Dockerfile parses, takes ARG SERVICE, and every image runs as non-root', async (t) => {
  const instructions = parseDockerfile(readFileSync(DOCKERFILE, 'utf8'))
  for (const instruction of instructions)
    t.ok(INSTRUCTIONS.has(instruction.keyword), `line ${instruction.line}: ${instruction.keyword}`)
  t.ok(
    instructions.some((instruction) => instruction.keyword === 'ARG' && /^SERVICE(\s|=|$)/.test(instruction.args)),
    'ARG SERVICE'
  )

  const stages = stagesOf(instructions)
  t.equal(stages.at(-1)?.from, '${SERVICE}', 'the image built is the stage SERVICE names')
  const byName = new Map(stages.flatMap((stage) => (stage.name === undefined ? [] : [[stage.name, stage] as const])))
  const chain = (stage: Stage): Instruction[] => {
    const parent = byName.get(stage.from)
    return [...(parent === undefined ? [] : chain(parent)), ...stage.instructions]
  }

  for (const service of SERVICE_NAMES) {
    const stage = byName.get(service)
    if (stage === undefined) throw new Error(`no stage ${service}`)
    const effective = chain(stage)
    const last = (keyword: string) => effective.filter((instruction) => instruction.keyword === keyword).at(-1)?.args
    const user = last('USER')
    t.ok(user !== undefined && !/^(root|0)(:|$)/.test(user), `${service}: USER ${user} is not root`)
    t.equal(last('WORKDIR'), `/app/${SERVICE_DIRS[service]}`, `${service}: runs from its own folder`)
    t.same(JSON.parse(last('CMD') ?? 'null'), ['node', '--import', 'tsx', 'src/server.ts'], `${service}: CMD`)
    const manifest = JSON.parse(readFileSync(join(REPO_ROOT, SERVICE_DIRS[service], 'package.json'), 'utf8'))
    t.ok(manifest.dependencies?.tsx, `${service}: tsx is a production dependency (the image installs --prod)`)
    t.equal(last('EXPOSE'), String(DEFAULT_PORTS[service]), `${service}: EXPOSE`)
    t.match(last('HEALTHCHECK') ?? '', /\/health/, `${service}: HEALTHCHECK on /health`)
    t.match(stage.from, /^runtime$/)
  }
  const runtime = byName.get('runtime')
  t.match(runtime?.from ?? '', /^node:\$\{NODE_VERSION\}-slim$/, 'runtime on node slim')
})

t.test('every COPY source of the Dockerfile exists in the repository', async (t) => {
  const copies = parseDockerfile(readFileSync(DOCKERFILE, 'utf8')).filter((instruction) =>
    ['COPY', 'ADD'].includes(instruction.keyword)
  )
  let checked = 0
  for (const copy of copies) {
    const words = copy.args.split(/\s+/)
    // Copies out of a build stage take build outputs, which do not exist in the repository.
    if (words.some((word) => word.startsWith('--from='))) continue
    const sources = words.filter((word) => !word.startsWith('--')).slice(0, -1)
    for (const source of sources) {
      checked++
      t.ok(existsSync(join(REPO_ROOT, source)), `line ${copy.line}: ${source} exists`)
    }
  }
  t.ok(checked >= 1, 'the COPY sources were found')
  const ignore = readFileSync(join(REPO_ROOT, 'deploy', 'docker', 'Dockerfile.dockerignore'), 'utf8').split('\n')
  for (const entry of ['.git', '**/node_modules', '.data']) t.ok(ignore.includes(entry), `the build context leaves out ${entry}`)
})
