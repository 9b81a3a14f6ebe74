import fp from 'fastify-plugin'
import helmet from '@fastify/helmet'
import Fastify, { type FastifyInstance } from 'fastify'

/**
 * The Content-Security-Policy of every answer: Swagger UI (`/docs/`) is served from the same origin
 * with its own scripts and styles, so `'self'` is all it needs, plus inline styles (its React renders
 * `style` attributes) and `data:` images (its icons). No CDN, so it works offline; no
 * `upgrade-insecure-requests`, which would send a browser on plain-HTTP deployments to https.
 */
export const CONTENT_SECURITY_POLICY = {
  defaultSrc: ["'self'"],
  baseUri: ["'self'"],
  connectSrc: ["'self'"],
  fontSrc: ["'self'", 'data:'],
  formAction: ["'self'"],
  frameAncestors: ["'none'"],
  imgSrc: ["'self'", 'data:'],
  objectSrc: ["'none'"],
  scriptSrc: ["'self'"],
  scriptSrcAttr: ["'none'"],
  styleSrc: ["'self'", "'unsafe-inline'"],
  upgradeInsecureRequests: null
}

/**
 * Security headers on every answer of a service or the gateway (registered first, so answers refused by
 * a later hook carry them too): helmet's set (`X-Content-Type-Options: nosniff`, frame and referrer
 * policies, the CSP above) and `Cache-Control: no-store`, since tokens and personal data are what this
 * API answers with (a route that may be cached says so itself: the JWKS); and the `X-Request-Id`.
 */
export const securityHeadersPlugin = fp(
  async function securityHeaders(app: FastifyInstance) {
    // @fastify/helmet builds helmet's middleware anew on every request (parsing the CSP each time: ~3 % of
    // the gateway's CPU per request); the headers never vary here, so they are taken once from it and set.
    // Set one by one (`reply.headers(object)` walks the object's keys each time), with the request id that
    // names the request in every process's log.
    const headers = Object.entries({ ...(await helmetHeaders()), 'cache-control': 'no-store' })
    app.addHook('onRequest', (request, reply, done) => {
      for (let i = 0; i < headers.length; i++) reply.header(headers[i][0], headers[i][1])
      reply.header('x-request-id', request.id)
      done()
    })
  },
  { name: 'roster-security-headers' }
)

/** The headers @fastify/helmet sets with the kit's options, read off one answer of a throwaway instance. */
async function helmetHeaders(): Promise<Record<string, string>> {
  const probe = Fastify({ logger: false })
  try {
    await probe.register(helmet, {
      global: true,
      contentSecurityPolicy: { useDefaults: false, directives: CONTENT_SECURITY_POLICY }
    })
    probe.get('/', async () => '')
    const bare = Fastify({ logger: false })
    bare.get('/', async () => '')
    const [withHelmet, without] = await Promise.all([probe.inject('/'), bare.inject('/')])
    await bare.close()
    const out: Record<string, string> = {}
    for (const [name, value] of Object.entries(withHelmet.headers)) {
      if (value !== undefined && without.headers[name] === undefined) out[name] = String(value)
    }
    return out
  } finally {
    await probe.close()
  }
}
