import t from 'tap'
import { OpenApiChecker } from './e2e/openapi-check.js'

// The checker that every e2e answer goes through must itself catch what it is for: an undocumented
// status, a null where the schema does not allow one, a missing required header, a body of the wrong shape.
const doc = {
  openapi: '3.0.3',
  info: { title: 't', version: '1' },
  paths: {
    '/api/users/{pk}/': {
      get: {
        responses: {
          200: {
            description: 'the user',
            headers: { 'X-Request-Id': { $ref: '#/components/headers/RequestId' } },
            content: { 'application/json': { schema: { $ref: '#/components/schemas/User' } } }
          },
          404: { $ref: '#/components/responses/NotFound' },
          405: { $ref: '#/components/responses/NotFound' }
        }
      }
    },
    '/api/users/me/': { get: { responses: { 204: { description: 'none' } } } },
    '/api/groups/{pk}/': {
      get: {
        responses: {
          200: {
            description: 'a group',
            content: {
              'application/json': {
                schema: {
                  type: 'object',
                  required: ['profile'],
                  properties: { profile: { allOf: [{ $ref: '#/components/schemas/Profile' }], nullable: true } }
                }
              }
            }
          }
        }
      }
    }
  },
  components: {
    headers: { RequestId: { required: true, schema: { type: 'string' } } },
    responses: {
      NotFound: {
        description: 'no such thing',
        content: {
          'application/json': {
            schema: { type: 'object', required: ['detail'], properties: { detail: { type: 'string' } } }
          }
        }
      }
    },
    schemas: {
      Profile: { type: 'object', required: ['name'], properties: { name: { type: 'string' } } },
      User: {
        type: 'object',
        required: ['id', 'profile'],
        properties: {
          id: { type: 'integer' },
          profile: { $ref: '#/components/schemas/Profile' },
          email: { type: 'string', nullable: true }
        }
      }
    }
  }
}

const checker = new OpenApiChecker(doc)
const json = { 'content-type': 'application/json; charset=utf-8', 'x-request-id': 'r1' }
const answer = (
  method: string,
  path: string,
  status: number,
  body: unknown,
  headers: Record<string, string> = json
) => ({
  method,
  path,
  status,
  headers,
  text: body === undefined ? '' : JSON.stringify(body)
})

t.same(
  checker.check(answer('GET', '/api/users/1/?x=1', 200, { id: 1, profile: { name: 'a' }, email: null })),
  [],
  'a documented answer passes (nullable field null)'
)
t.match(
  checker.check(answer('GET', '/api/users/1/', 200, { id: 1, profile: null })).join(),
  /body does not match the schema: \/profile/,
  'null where a bare $ref is: caught'
)
t.same(
  checker.check(answer('GET', '/api/groups/1/', 200, { profile: null })),
  [],
  'nullable beside allOf: null allowed'
)
t.match(
  checker.check(answer('GET', '/api/groups/1/', 200, { profile: { name: 1 } })).join(),
  /\/profile\/name/,
  'a wrong type inside: caught'
)
t.match(
  checker.check(answer('GET', '/api/users/1/', 500, { detail: 'x' })).join(),
  /status 500 is not documented for GET \/api\/users\/\{pk\}\//,
  'an undocumented status: caught'
)
t.match(
  checker
    .check(
      answer('GET', '/api/users/1/', 200, { id: 1, profile: { name: 'a' } }, { 'content-type': 'application/json' })
    )
    .join(),
  /X-Request-Id is documented as required and missing/,
  'a missing required header: caught'
)
t.match(
  checker
    .check(
      answer(
        'GET',
        '/api/users/1/',
        200,
        { id: 1, profile: { name: 'a' } },
        { 'content-type': 'text/html', 'x-request-id': 'r' }
      )
    )
    .join(),
  /content-type "text\/html" is not documented/,
  'an undocumented media type: caught'
)
t.same(checker.check(answer('GET', '/api/users/me/', 204, undefined)), [], 'the literal path wins over {pk}')
t.match(
  checker.check(answer('GET', '/api/users/me/', 204, { a: 1 })).join(),
  /a body where the document says there is none/
)
t.same(
  checker.check(answer('DELETE', '/api/users/1/', 405, { detail: 'no' }, { ...json, allow: 'GET' })),
  [],
  'another method: a 405 that the path documents'
)
t.match(checker.check(answer('DELETE', '/api/users/1/', 405, { detail: 'no' })).join(), /405 without Allow/)
t.same(
  checker.check(answer('GET', '/api/users/x%2F/..', 404, { detail: 'no' })),
  [],
  'a path of no operation: a documented status in the DRF shape'
)
t.match(checker.check(answer('GET', '/api/nothing', 418, { detail: 'no' })).join(), /status 418 is documented nowhere/)
t.match(checker.check(answer('GET', '/api/nothing', 404, ['no'])).join(), /not an object/)
t.same(
  checker.check(answer('GET', '/health', 200, { ok: true })),
  [],
  'outside /api and not in the document: not the API'
)
