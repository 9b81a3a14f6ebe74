import fp from 'fastify-plugin'
import helmet from '@fastify/helmet'
import type { FastifyInstance } from 'fastify'

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
 * API answers with; a route that may be cached says so itself (the JWKS).
 */
export const securityHeadersPlugin = fp(
  async function securityHeaders(app: FastifyInstance) {
    await app.register(helmet, { global: true, contentSecurityPolicy: { useDefaults: false, directives: CONTENT_SECURITY_POLICY } })
    app.addHook('onRequest', async (_request, reply) => {
      reply.header('cache-control', 'no-store')
    })
  },
  { name: 'roster-security-headers' }
)
