// Strict validation of Kubernetes objects without an API server:
// - built-in kinds: the types and required fields of the Kubernetes OpenAPI schema (kubernetes-models'
//   validators), and unknown fields refused by walking the object against the API's own field lists
//   (the models of @kubernetes/client-node, generated from the same OpenAPI document) — what
//   `kubectl apply --validate=strict` does on a server;
// - custom resources (ServiceMonitor, PrometheusRule, CloudNativePG Cluster and Pooler): the
//   prometheus-operator models' validators where they exist, and a field list per CRD (the fields of
//   their published CRD reference that these manifests may use), unknown fields refused likewise.
import * as k8s from '@kubernetes/client-node/dist/gen/models/all.js'
import { ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor'
import { PrometheusRule } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule'
import { Deployment } from 'kubernetes-models/apps/v1/Deployment'
import { Job } from 'kubernetes-models/batch/v1/Job'
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap'
import { Namespace } from 'kubernetes-models/v1/Namespace'
import { Secret } from 'kubernetes-models/v1/Secret'
import { Service } from 'kubernetes-models/v1/Service'
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget'
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler'
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy'
import { Ingress } from 'kubernetes-models/networking.k8s.io/v1/Ingress'

type Doc = Record<string, any>
interface Model {
  validate(): void
}

const BUILT_IN: Record<string, { model: new (data: any) => Model; type: string }> = {
  'apps/v1/Deployment': { model: Deployment, type: 'V1Deployment' },
  'batch/v1/Job': { model: Job, type: 'V1Job' },
  'v1/ConfigMap': { model: ConfigMap, type: 'V1ConfigMap' },
  'v1/Namespace': { model: Namespace, type: 'V1Namespace' },
  'v1/Secret': { model: Secret, type: 'V1Secret' },
  'v1/Service': { model: Service, type: 'V1Service' },
  'policy/v1/PodDisruptionBudget': { model: PodDisruptionBudget, type: 'V1PodDisruptionBudget' },
  'autoscaling/v2/HorizontalPodAutoscaler': { model: HorizontalPodAutoscaler, type: 'V2HorizontalPodAutoscaler' },
  'networking.k8s.io/v1/NetworkPolicy': { model: NetworkPolicy, type: 'V1NetworkPolicy' },
  'networking.k8s.io/v1/Ingress': { model: Ingress, type: 'V1Ingress' }
}

const MODELS = k8s as unknown as Record<string, { getAttributeTypeMap?: () => { baseName: string; type: string }[] }>

/** Unknown fields (and values of the wrong shape) under a client-node model type, as JSON paths. */
export function unknownFields(value: unknown, type: string, path = ''): string[] {
  if (value === null || value === undefined) return []
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type)
  if (map) {
    if (typeof value !== 'object' || Array.isArray(value)) return [`${path}: expected a map`]
    return Object.entries(value).flatMap(([key, item]) => unknownFields(item, map[1]!, `${path}/${key}`))
  }
  const array = /^Array<(.+)>$/.exec(type)
  if (array) {
    if (!Array.isArray(value)) return [`${path}: expected a list`]
    return value.flatMap((item, index) => unknownFields(item, array[1]!, `${path}/${index}`))
  }
  if (['string', 'number', 'boolean', 'Date', 'any', 'IntOrString', 'object'].includes(type)) return []
  const attributes = MODELS[type]?.getAttributeTypeMap?.()
  if (attributes === undefined) return [`${path}: no schema for type ${type}`]
  if (typeof value !== 'object' || Array.isArray(value)) return [`${path}: expected an object (${type})`]
  const fields = new Map(attributes.map((attribute) => [attribute.baseName, attribute.type]))
  return Object.entries(value).flatMap(([key, item]) => {
    const fieldType = fields.get(key)
    return fieldType === undefined
      ? [`${path}/${key}: unknown field of ${type}`]
      : unknownFields(item, fieldType, `${path}/${key}`)
  })
}

// ------------------------------------------------------------------ custom resources

/** A CRD's field list: nested keys, `'*'` for a free-form value, or a built-in Kubernetes type by name. */
type Shape = '*' | { k8s: string } | { keys: Record<string, Shape> } | { list: Shape } | { map: Shape }

const any: Shape = '*'
const keys = (fields: Record<string, Shape>): Shape => ({ keys: fields })
const list = (item: Shape): Shape => ({ list: item })
const free = (names: string[]): Record<string, Shape> => Object.fromEntries(names.map((name) => [name, any]))

const OBJECT_META: Shape = { k8s: 'V1ObjectMeta' }
const SAFE_AUTH = free(['authorization', 'basicAuth', 'bearerTokenFile', 'bearerTokenSecret', 'oauth2', 'tlsConfig'])

// monitoring.coreos.com/v1 (prometheus-operator API reference)
const SERVICE_MONITOR = keys({
  apiVersion: any,
  kind: any,
  metadata: OBJECT_META,
  spec: keys({
    ...free([
      'attachMetadata',
      'bodySizeLimit',
      'jobLabel',
      'keepDroppedTargets',
      'labelLimit',
      'labelNameLengthLimit',
      'labelValueLengthLimit',
      'podTargetLabels',
      'sampleLimit',
      'scrapeClass',
      'scrapeProtocols',
      'targetLabels',
      'targetLimit'
    ]),
    selector: { k8s: 'V1LabelSelector' },
    namespaceSelector: keys(free(['any', 'matchNames'])),
    endpoints: list(
      keys({
        ...SAFE_AUTH,
        ...free([
          'enableHttp2',
          'filterRunning',
          'followRedirects',
          'honorLabels',
          'honorTimestamps',
          'interval',
          'metricRelabelings',
          'params',
          'path',
          'port',
          'proxyUrl',
          'relabelings',
          'scheme',
          'scrapeTimeout',
          'targetPort',
          'trackTimestampsStaleness'
        ])
      })
    )
  })
})

const PROMETHEUS_RULE = keys({
  apiVersion: any,
  kind: any,
  metadata: OBJECT_META,
  spec: keys({
    groups: list(
      keys({
        ...free(['name', 'interval', 'limit', 'partial_response_strategy', 'query_offset', 'labels']),
        rules: list(keys(free(['alert', 'record', 'expr', 'for', 'keep_firing_for', 'labels', 'annotations'])))
      })
    )
  })
})

// postgresql.cnpg.io/v1 (CloudNativePG API reference)
const CNPG_CLUSTER = keys({
  apiVersion: any,
  kind: any,
  metadata: OBJECT_META,
  spec: keys({
    ...free([
      'affinity',
      'backup',
      'certificates',
      'description',
      'enablePDB',
      'enableSuperuserAccess',
      'env',
      'envFrom',
      'externalClusters',
      'failoverDelay',
      'imageCatalogRef',
      'imageName',
      'imagePullPolicy',
      'imagePullSecrets',
      'inheritedMetadata',
      'instances',
      'logLevel',
      'managed',
      'maxSyncReplicas',
      'minSyncReplicas',
      'nodeMaintenanceWindow',
      'primaryUpdateMethod',
      'primaryUpdateStrategy',
      'priorityClassName',
      'replica',
      'replicationSlots',
      'smartShutdownTimeout',
      'startDelay',
      'stopDelay',
      'superuserSecret',
      'switchoverDelay',
      'topologySpreadConstraints',
      'walStorage'
    ]),
    postgresql: keys(
      free([
        'parameters',
        'pg_hba',
        'pg_ident',
        'shared_preload_libraries',
        'synchronous',
        'ldap',
        'promotionTimeout',
        'enableAlterSystem'
      ])
    ),
    bootstrap: keys({
      initdb: keys(
        free([
          'database',
          'owner',
          'secret',
          'options',
          'dataChecksums',
          'encoding',
          'locale',
          'localeCollate',
          'localeCType',
          'walSegmentSize',
          'postInitSQL',
          'postInitApplicationSQL',
          'postInitTemplateSQL',
          'import'
        ])
      ),
      recovery: any,
      pg_basebackup: any
    }),
    storage: keys(free(['size', 'storageClass', 'resizeInUseVolumes', 'pvcTemplate'])),
    resources: { k8s: 'V1ResourceRequirements' },
    monitoring: keys(
      free([
        'enablePodMonitor',
        'customQueriesConfigMap',
        'customQueriesSecret',
        'disableDefaultQueries',
        'podMonitorMetricRelabelings',
        'podMonitorRelabelings'
      ])
    )
  })
})

const CNPG_POOLER = keys({
  apiVersion: any,
  kind: any,
  metadata: OBJECT_META,
  spec: keys({
    cluster: keys({ name: any }),
    type: any,
    instances: any,
    pgbouncer: keys(free(['poolMode', 'parameters', 'authQuery', 'authQuerySecret', 'pg_hba', 'paused'])),
    template: any,
    deploymentStrategy: any,
    monitoring: any,
    serviceTemplate: any
  })
})

function shapeErrors(value: unknown, shape: Shape, path = ''): string[] {
  if (shape === '*' || value === undefined || value === null) return []
  if ('k8s' in shape) return unknownFields(value, shape.k8s, path)
  if ('list' in shape) {
    if (!Array.isArray(value)) return [`${path}: expected a list`]
    return value.flatMap((item, index) => shapeErrors(item, shape.list, `${path}/${index}`))
  }
  if ('map' in shape) {
    if (typeof value !== 'object' || Array.isArray(value)) return [`${path}: expected a map`]
    return Object.entries(value as Doc).flatMap(([key, item]) => shapeErrors(item, shape.map, `${path}/${key}`))
  }
  if (typeof value !== 'object' || Array.isArray(value)) return [`${path}: expected an object`]
  return Object.entries(value as Doc).flatMap(([key, item]) => {
    const field = shape.keys[key]
    return field === undefined ? [`${path}/${key}: unknown field`] : shapeErrors(item, field, `${path}/${key}`)
  })
}

function required(doc: Doc, paths: string[]): string[] {
  return paths.flatMap((path) => {
    const value = path.split('.').reduce<any>((node, key) => node?.[key], doc)
    return value === undefined || value === null || value === '' ? [`/${path.replaceAll('.', '/')}: required`] : []
  })
}

function enumOf(doc: Doc, path: string, allowed: unknown[]): string[] {
  const value = path.split('.').reduce<any>((node, key) => node?.[key], doc)
  return value === undefined || allowed.includes(value)
    ? []
    : [`/${path.replaceAll('.', '/')}: ${JSON.stringify(value)} is not one of ${JSON.stringify(allowed)}`]
}

const CUSTOM: Record<string, (doc: Doc) => string[]> = {
  'monitoring.coreos.com/v1/ServiceMonitor': (doc) => [
    ...modelErrors(ServiceMonitor, doc),
    ...shapeErrors(doc, SERVICE_MONITOR),
    ...required(doc, ['spec.selector', 'spec.endpoints'])
  ],
  'monitoring.coreos.com/v1/PrometheusRule': (doc) => [
    ...modelErrors(PrometheusRule, doc),
    ...shapeErrors(doc, PROMETHEUS_RULE),
    ...((doc.spec?.groups ?? []) as Doc[]).flatMap((group, g) =>
      ((group.rules ?? []) as Doc[]).flatMap((rule, r) =>
        typeof rule.expr === 'string' && (rule.alert !== undefined) !== (rule.record !== undefined)
          ? []
          : [`/spec/groups/${g}/rules/${r}: a rule has an expr and exactly one of alert or record`]
      )
    )
  ],
  'postgresql.cnpg.io/v1/Cluster': (doc) => [
    ...shapeErrors(doc, CNPG_CLUSTER),
    ...required(doc, ['metadata.name', 'spec.instances', 'spec.storage.size']),
    ...(Number.isInteger(doc.spec?.instances) && doc.spec.instances >= 1
      ? []
      : ['/spec/instances: a positive integer']),
    ...Object.entries((doc.spec?.postgresql?.parameters ?? {}) as Doc).flatMap(([key, value]) =>
      typeof value === 'string' ? [] : [`/spec/postgresql/parameters/${key}: parameters are strings`]
    )
  ],
  'postgresql.cnpg.io/v1/Pooler': (doc) => [
    ...shapeErrors(doc, CNPG_POOLER),
    ...required(doc, ['metadata.name', 'spec.cluster.name', 'spec.pgbouncer']),
    ...enumOf(doc, 'spec.type', ['rw', 'ro', 'r']),
    ...enumOf(doc, 'spec.pgbouncer.poolMode', ['session', 'transaction']),
    ...Object.entries((doc.spec?.pgbouncer?.parameters ?? {}) as Doc).flatMap(([key, value]) =>
      typeof value === 'string' ? [] : [`/spec/pgbouncer/parameters/${key}: parameters are strings`]
    )
  ]
}

function modelErrors(Model: new (data: any) => Model, doc: Doc): string[] {
  try {
    new Model(doc).validate()
    return []
  } catch (error) {
    return [
      String((error as Error).message)
        .split('\n')
        .slice(0, 5)
        .join('; ')
    ]
  }
}

/** Every problem with one rendered object (empty when it is valid); an unknown kind is a problem too. */
export function validateObject(doc: Doc): string[] {
  const key = `${doc.apiVersion}/${doc.kind}`
  const builtIn = BUILT_IN[key]
  if (builtIn === undefined) return CUSTOM[key]?.(doc) ?? [`${key}: no schema known for this kind`]
  // kustomize wraps Secret data at 70 columns; the API server's base64 decoding (Go's encoding/json)
  // skips line breaks, the "byte" format of the schema does not.
  const asSent =
    doc.kind === 'Secret' && doc.data
      ? {
          ...doc,
          data: Object.fromEntries(
            Object.entries(doc.data as Doc).map(([k, v]) => [k, String(v).replace(/[\r\n]/g, '')])
          )
        }
      : doc
  return [...modelErrors(builtIn.model, asSent), ...unknownFields(doc, builtIn.type)]
}
