import { Ajv, type ValidateFunction } from 'ajv'
import addFormatsModule from 'ajv-formats'

// ajv-formats is CommonJS with a default export.
const addFormats = ((addFormatsModule as unknown as { default?: typeof addFormatsModule }).default ??
  addFormatsModule) as unknown as (ajv: Ajv) => Ajv

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options', 'trace'] as const

type Json = any

/** An answer as the e2e client saw it. */
export interface Answer {
  method: string
  /** The path as requested, with its query (the query is ignored). */
  path: string
  status: number
  headers: Headers | Record<string, string | string[] | undefined>
  /** The body as text ('' when none). */
  text: string
}

/**
 * OpenAPI 3.0 schema → JSON Schema that ajv understands: `nullable: true` means "or null" (also beside
 * `allOf`/`oneOf`/`$ref`, as generators read it), `$ref`s stay pointers into the same document.
 */
function toJsonSchema(node: Json): Json {
  if (Array.isArray(node)) return node.map(toJsonSchema)
  if (node === null || typeof node !== 'object') return node
  const out: Json = {}
  for (const [key, value] of Object.entries(node)) {
    if (
      key === 'nullable' ||
      key === 'example' ||
      key === 'examples' ||
      key === 'discriminator' ||
      key === 'xml' ||
      key === 'externalDocs'
    )
      continue
    out[key] = toJsonSchema(value)
  }
  if (node.nullable === true) {
    // A $ref's siblings are ignored by JSON Schema draft 7: move it into the anyOf.
    return { anyOf: [out, { type: 'null' }] }
  }
  return out
}

function headerValue(headers: Answer['headers'], name: string): string | undefined {
  if (typeof (headers as Headers).get === 'function') return (headers as Headers).get(name) ?? undefined
  const value = (headers as Record<string, string | string[] | undefined>)[name.toLowerCase()]
  return Array.isArray(value) ? value.join(', ') : value
}

/** The DRF error shape of API.md: `{"detail": "..."}` (with `code`/`non_field_errors` beside it) or field errors. */
export function drfShapeProblem(json: unknown): string | undefined {
  const fieldErrors = (value: unknown, depth = 0): boolean => {
    if (depth > 5 || value === null || typeof value !== 'object' || Array.isArray(value)) return false
    const entries = Object.entries(value)
    return (
      entries.length > 0 &&
      entries.every(
        ([, v]) =>
          (Array.isArray(v) &&
            v.length > 0 &&
            v.every(
              (m) =>
                typeof m === 'string' ||
                fieldErrors(m, depth + 1) ||
                (m !== null && typeof m === 'object' && Object.keys(m).length === 0)
            )) ||
          fieldErrors(v, depth + 1)
      )
    )
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) return 'error body is not an object'
  if ('detail' in json)
    return typeof (json as { detail: unknown }).detail === 'string' ? undefined : 'detail is not a string'
  return fieldErrors(json) ? undefined : 'not the DRF error shape'
}

/**
 * Checks answers against an OpenAPI 3.0 document: the path matches a path template (literal segments
 * before parameters), the method is an operation of it, the status is one it documents (or a `4XX`/
 * `default` range), the body matches the answer's schema (ajv, nullable as OpenAPI 3.0 means it, `$ref`
 * into components) and is of a documented media type, and every header the answer declares `required`
 * is present. Answers to paths outside `/api` that the document does not list (the document itself,
 * `/health`) are not the API's and are not checked.
 */
export class OpenApiChecker {
  private readonly ajv: Ajv
  private readonly templates: { template: string; regex: RegExp; literal: number }[]
  private readonly compiled = new Map<string, ValidateFunction>()
  /** Every status some operation documents: all a path that matches no operation may answer. */
  readonly anyStatus = new Set<string>()

  constructor(readonly doc: Json) {
    this.ajv = new Ajv({ strict: false, validateSchema: false, allErrors: true, allowUnionTypes: true })
    addFormats(this.ajv)
    this.ajv.addSchema(toJsonSchema(doc), 'openapi')
    this.templates = Object.keys(doc.paths ?? {})
      .map((template) => ({
        template,
        regex: new RegExp(
          '^' +
            template
              .split(/(\{[^}]+\})/)
              .map((part) => (/^\{[^}]+\}$/.test(part) ? '[^/]+' : part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
              .join('') +
            '$'
        ),
        literal: template.replace(/\{[^}]+\}/g, '').length
      }))
      .sort((a, b) => b.literal - a.literal)
    for (const item of Object.values<Json>(doc.paths ?? {})) {
      for (const method of METHODS)
        for (const status of Object.keys(this.deref(item[method])?.responses ?? {})) this.anyStatus.add(status)
    }
  }

  /** The template a raw path (query ignored) matches, if any. */
  template(path: string): string | undefined {
    const pathname = path.split('?')[0]!
    return this.templates.find((t) => t.regex.test(pathname))?.template
  }

  private deref(node: Json): Json {
    let seen = 0
    while (node && typeof node === 'object' && typeof node.$ref === 'string' && seen++ < 10) {
      node = node.$ref
        .replace(/^#\//, '')
        .split('/')
        .map((p: string) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
        .reduce((at: Json, key: string) => at?.[key], this.doc)
    }
    return node
  }

  private static pointer(...parts: string[]): string {
    return 'openapi#/' + parts.map((p) => encodeURIComponent(p.replace(/~/g, '~0').replace(/\//g, '~1'))).join('/')
  }

  /** Whether `status` is documented by `responses` (exactly, by its `4XX` range or by `default`). */
  private static responseKey(responses: Json, status: number): string | undefined {
    const s = String(status)
    if (responses?.[s]) return s
    if (responses?.[`${s[0]}XX`]) return `${s[0]}XX`
    if (responses?.default) return 'default'
    return undefined
  }

  /** What is wrong with an answer (empty when nothing is). */
  check(answer: Answer): string[] {
    const method = answer.method.toLowerCase()
    const template = this.template(answer.path)
    const pathname = answer.path.split('?')[0]!
    let json: unknown
    let parsed = false
    try {
      json = answer.text === '' ? undefined : JSON.parse(answer.text)
      parsed = answer.text !== ''
    } catch {
      /* not JSON */
    }
    if (template === undefined) {
      if (!pathname.startsWith('/api')) return []
      // A path that is no operation (what a hostile client sends): a documented status in the DRF shape.
      const problems: string[] = []
      if (!this.anyStatus.has(String(answer.status))) problems.push(`status ${answer.status} is documented nowhere`)
      if (answer.status >= 400 && answer.status !== 405 && method !== 'head') {
        const shape = parsed ? drfShapeProblem(json) : 'body is not JSON'
        if (shape) problems.push(shape)
      }
      return problems
    }
    const item = this.deref(this.doc.paths[template])
    const operation = this.deref(item[method])
    if (!operation) {
      if (method === 'options' || method === 'head') return []
      // Another method on a documented path: the 405 (with Allow) that the path's operations document.
      const documented = METHODS.some(
        (m) =>
          item[m] &&
          OpenApiChecker.responseKey(this.deref(item[m]).responses, answer.status) &&
          OpenApiChecker.responseKey(this.deref(item[m]).responses, answer.status) !== 'default'
      )
      const problems: string[] = []
      if (!documented)
        problems.push(
          `${answer.status} to ${method.toUpperCase()}, which ${template} does not have, is documented by none of its operations`
        )
      if (answer.status === 405 && !headerValue(answer.headers, 'allow')) problems.push('405 without Allow')
      return problems
    }
    const key = OpenApiChecker.responseKey(operation.responses, answer.status)
    if (key === undefined)
      return [
        `status ${answer.status} is not documented for ${method.toUpperCase()} ${template} (documented: ${Object.keys(operation.responses ?? {}).join(', ')})`
      ]
    const response = this.deref(operation.responses[key])
    const problems: string[] = []
    for (const [name, raw] of Object.entries<Json>(response.headers ?? {})) {
      const header = this.deref(raw)
      const value = headerValue(answer.headers, name)
      if (value === undefined) {
        if (header?.required === true) problems.push(`header ${name} is documented as required and missing`)
        continue
      }
      const schema = this.deref(header?.schema)
      if (schema?.type === 'integer' && !/^-?\d+$/.test(value.trim())) problems.push(`header ${name} is not an integer`)
    }
    const content = response.content as Record<string, Json> | undefined
    if (method === 'head') return problems
    if (!content || Object.keys(content).length === 0) {
      if (answer.text !== '') problems.push(`a body where the document says there is none`)
      return problems
    }
    const type = (headerValue(answer.headers, 'content-type') ?? '').split(';')[0]!.trim().toLowerCase()
    const mediaType =
      Object.keys(content).find((m) => m.toLowerCase() === type) ??
      Object.keys(content).find((m) => m === '*/*' || (m.endsWith('/*') && type.startsWith(m.slice(0, -1))))
    if (mediaType === undefined) {
      problems.push(`content-type ${JSON.stringify(type)} is not documented (${Object.keys(content).join(', ')})`)
      return problems
    }
    if (!content[mediaType]?.schema) return problems
    if (/json/.test(mediaType) && !parsed) {
      problems.push('body is not JSON')
      return problems
    }
    // The answer may be a `$ref` to `components.responses`: point at where its schema really is (ajv cannot
    // follow a JSON pointer through a `$ref` in the middle).
    let at = ['paths', template, method, 'responses', key]
    let node: Json = operation.responses[key]
    for (let hops = 0; node && typeof node.$ref === 'string' && hops < 10; hops++) {
      at = (node.$ref as string)
        .replace(/^#\//, '')
        .split('/')
        .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
      node = at.reduce((value: Json, part) => value?.[part], this.doc)
    }
    const pointer = OpenApiChecker.pointer(...at, 'content', mediaType, 'schema')
    let validate = this.compiled.get(pointer)
    if (!validate) {
      try {
        validate = this.ajv.compile({ $ref: pointer })
      } catch (error) {
        problems.push(`the schema cannot be compiled: ${(error as Error).message}`)
        return problems
      }
      this.compiled.set(pointer, validate)
    }
    if (!validate(json)) {
      problems.push(
        'body does not match the schema: ' +
          (validate.errors ?? [])
            .slice(0, 6)
            .map(
              (e) =>
                `${e.instancePath || '(root)'} ${e.message}${e.params && Object.keys(e.params).length ? ' ' + JSON.stringify(e.params) : ''}`
            )
            .join('; ')
      )
    }
    return problems
  }
}
