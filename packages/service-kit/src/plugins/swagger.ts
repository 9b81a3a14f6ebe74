import fp from 'fastify-plugin'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import type { FastifyInstance } from 'fastify'
import { completeDocument } from './openapi-document.js'

/**
 * OpenAPI 3 generated from the route schemas at `/docs/json`, Swagger UI at `/docs/`. A service's docs are
 * internal (`buildService` marks `/docs` so): the gateway merges them and serves the public `/docs`.
 */
export const swaggerPlugin = fp(
  async function docs(app: FastifyInstance, options: { service: string; description: string }) {
    await app.register(swagger, {
      openapi: {
        openapi: '3.0.3',
        info: { title: `Roster ${options.service} service`, description: options.description, version: '0.1.0' },
        components: {
          securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } }
        },
        security: [{ bearerAuth: [] }]
      },
      // operationIds, integer path ids, nullable refs, named bodies, shared answers, headers and examples.
      transformObject: (documentObject) =>
        completeDocument(
          // eslint-disable-next-line @typescript-eslint/no-explicit-any -- @fastify/swagger's transformObject gives the document untyped
          structuredClone((documentObject as any).openapiObject),
          app.getSchemas() as Record<string, object>
          // eslint-disable-next-line @typescript-eslint/no-explicit-any -- and wants it back untyped
        ) as any,
      refResolver: {
        buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`)
      }
    })
    await app.register(swaggerUi, { routePrefix: '/docs' })
  },
  { name: 'roster-swagger' }
)
