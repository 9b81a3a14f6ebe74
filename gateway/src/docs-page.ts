/**
 * Swagger UI settings of the gateway's `/docs/` page. A successful "Try it out" of the login operation
 * (`POST /api/auth/`) authorizes the page with the access token it answered, as if the person had pasted
 * it into "Authorize"; `persistAuthorization` keeps it across a reload (in the page's localStorage).
 *
 * @fastify/swagger-ui writes these settings into its same-origin `swagger-initializer.js` (a function
 * as its source text), so the page needs no inline script and no `unsafe-eval` under helmet's CSP. The
 * plugins are written as browser source here (`new Function`) so that no compiler helper of this
 * process ends up in the page.
 */
// eslint-disable-next-line no-new-func
const downloadUrl = new Function('system', 'return SwaggerUIBundle.plugins.DownloadUrl(system)')

// eslint-disable-next-line no-new-func
const loginFromPage = new Function(
  'system',
  `
  return {
    statePlugins: {
      spec: {
        wrapActions: {
          setResponse: function (original) {
            return function (path, method, response) {
              try {
                var body = response && response.body
                if (path === '/api/auth/' && method === 'post' && response.status === 200 && body && typeof body.access === 'string') {
                  system.preauthorizeApiKey('bearerAuth', body.access)
                  // As the Authorize dialog does: kept in localStorage when persistAuthorization is on.
                  system.authActions.persistAuthorizationIfNeeded()
                }
              } catch (error) {
                console.warn('could not authorize the page with the login answer', error)
              }
              return original(path, method, response)
            }
          }
        }
      }
    }
  }
`
)

export const DOCS_UI_CONFIG = {
  persistAuthorization: true,
  plugins: [downloadUrl, loginFromPage]
}
