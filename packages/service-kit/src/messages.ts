/**
 * The one catalogue of messages a client can see, in Simplified Chinese (the default, as in the API
 * document, following Django REST Framework's zh-Hans translations) and English.
 */
export type Lang = 'zh' | 'en'

const CATALOGUE = {
  required: { zh: '该字段是必填项。', en: 'This field is required.' },
  blank: { zh: '该字段不能为空。', en: 'This field may not be blank.' },
  null: { zh: '该字段不能为 null。', en: 'This field may not be null.' },
  max_length: {
    zh: '请确保这个字段不能超过 {limit} 个字符。',
    en: 'Ensure this field has no more than {limit} characters.'
  },
  min_length: {
    zh: '请确保这个字段至少包含 {limit} 个字符。',
    en: 'Ensure this field has at least {limit} characters.'
  },
  max_value: { zh: '请确保该值小于或者等于 {limit}。', en: 'Ensure this value is less than or equal to {limit}.' },
  min_value: { zh: '请确保该值大于或者等于 {limit}。', en: 'Ensure this value is greater than or equal to {limit}.' },
  invalid_integer: { zh: '请填写合法的整数值。', en: 'A valid integer is required.' },
  invalid_number: { zh: '请填写合法的数字。', en: 'A valid number is required.' },
  invalid_boolean: { zh: '必须是有效的布尔值。', en: 'Must be a valid boolean.' },
  invalid_string: { zh: '不是有效的字符串。', en: 'Not a valid string.' },
  invalid_object: {
    zh: '无效数据。期待为字典类型，得到的是 {datatype} 。',
    en: 'Invalid data. Expected a dictionary, but got {datatype}.'
  },
  not_a_list: {
    zh: '期望为一个包含物件的列表，得到的类型是“{datatype}”。',
    en: 'Expected a list of items but got type "{datatype}".'
  },
  invalid_choice: { zh: '“{input}” 不是合法选项。', en: '"{input}" is not a valid choice.' },
  invalid_email: { zh: '请输入合法的邮件地址。', en: 'Enter a valid email address.' },
  invalid_datetime: {
    zh: '日期时间格式错误。请从这些格式中选择：RFC 3339。',
    en: 'Datetime has wrong format. Use one of these formats instead: RFC 3339.'
  },
  invalid: { zh: '请输入合法的值。', en: 'Enter a valid value.' },
  null_characters: { zh: '不允许包含空字符。', en: 'Null characters are not allowed.' },
  invalid_characters: { zh: '包含无效的 Unicode 字符。', en: 'Contains invalid Unicode characters.' },
  too_deep: { zh: '嵌套层级过深，不能超过 {limit} 层。', en: 'Nested too deeply: at most {limit} levels.' },
  username_invalid: {
    zh: '请输入合法的用户名。只能包含字母、数字和 @/./+/-/_ 字符。',
    en: 'Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters.'
  },
  username_mixed_scripts: {
    zh: '用户名不能混用容易混淆的文字（例如拉丁字母中夹杂西里尔字母）。',
    en: 'This username mixes scripts in a confusable way (such as Cyrillic letters among Latin ones).'
  },
  username_confusable: {
    zh: '用户名与拉丁字母写成的名字容易混淆（例如全部用西里尔字母写成的 paypal）。',
    en: 'This username can be mistaken for one written in Latin letters (such as paypal spelled in Cyrillic).'
  },
  username_taken: { zh: '已存在一位使用该名字的用户。', en: 'A user with that username already exists.' },
  email_taken: { zh: '已存在一位使用该邮箱的用户。', en: 'A user with that email already exists.' },
  unique: { zh: '该字段必须唯一。', en: 'This field must be unique.' },
  conflict: {
    zh: '该请求与同时进行的另一修改冲突，请重试。',
    en: 'The request conflicted with a concurrent change; try again.'
  },
  phone_invalid: { zh: '请输入合法的手机号码。', en: 'Enter a valid mainland mobile phone number.' },
  contact_phone_invalid: { zh: '请输入合法的联系电话。', en: 'Enter a valid contact phone number.' },
  resident_id_format: {
    zh: '请输入有效的身份证号码：17 位数字加一位数字或 X。',
    en: 'Enter a valid resident ID number: 17 digits followed by a digit or X.'
  },
  resident_id_birth_date: {
    zh: '身份证号码中的出生日期无效。',
    en: 'The birth date in the resident ID number is not valid.'
  },
  resident_id_checksum: { zh: '身份证号码的校验位不正确。', en: 'The check digit of the resident ID number is wrong.' },
  password_too_short: {
    zh: '密码长度太短。密码必须包含至少 8 个字符。',
    en: 'This password is too short. It must contain at least 8 characters.'
  },
  password_too_long: {
    zh: '密码过长，不能超过 72 字节。',
    en: 'This password is too long. It must be at most 72 bytes.'
  },
  password_entirely_numeric: { zh: '这个密码全部是数字。', en: 'This password is entirely numeric.' },
  old_password_wrong: { zh: '原密码不正确。', en: 'Your old password was entered incorrectly.' },
  does_not_exist: { zh: '无效主键 “{input}” － 对象不存在。', en: 'Invalid pk "{input}" - object does not exist.' },
  already_blacklisted: { zh: '该病人已在黑名单中。', en: 'This patient is already on the blacklist.' },
  not_authenticated: { zh: '身份认证信息未提供。', en: 'Authentication credentials were not provided.' },
  permission_denied: { zh: '您没有执行该操作的权限。', en: 'You do not have permission to perform this action.' },
  not_found: { zh: '未找到。', en: 'Not found.' },
  method_not_allowed: { zh: '方法 “{method}” 不被允许。', en: 'Method "{method}" not allowed.' },
  unsupported_media_type: {
    zh: '不支持请求中的媒体类型 “{media_type}”。',
    en: 'Unsupported media type "{media_type}" in request.'
  },
  payload_too_large: {
    zh: '请求体过大，不能超过 {limit} 字节。',
    en: 'Request body is too large: at most {limit} bytes.'
  },
  parse_error: { zh: 'JSON 解析错误 - {reason}', en: 'JSON parse error - {reason}' },
  malformed_request: { zh: '请求格式错误 - {reason}', en: 'Malformed request - {reason}' },
  headers_too_large: { zh: '请求头过大。', en: 'Request header fields too large.' },
  request_timeout: { zh: '请求超时。', en: 'Request timeout.' },
  expectation_failed: {
    zh: '无法满足 Expect 请求头：只支持 100-continue。',
    en: 'The Expect header cannot be met: only 100-continue is supported.'
  },
  gateway_timeout: { zh: '服务响应超时，请稍后再试。', en: 'The service took too long to answer, try again later.' },
  throttled: {
    zh: '请求超过了限速。预计 {wait} 秒后可用。',
    en: 'Request was throttled. Expected available in {wait} seconds.'
  },
  token_not_valid: { zh: 'Given token not valid for any token type', en: 'Given token not valid for any token type' },
  refresh_not_valid: { zh: 'Token is invalid or expired', en: 'Token is invalid or expired' },
  login_failed: {
    zh: 'No active account found with the given credentials',
    en: 'No active account found with the given credentials'
  },
  logged_out: { zh: '成功登出！', en: 'Successfully logged out!' },
  deleted: { zh: '删除成功。', en: 'Deleted successfully.' },
  cannot_delete_self: { zh: '管理员不能删除自己。', en: 'An admin cannot delete itself.' },
  server_error: { zh: '服务器出现了错误。', en: 'A server error occurred.' },
  service_unavailable: { zh: '服务暂时不可用，请稍后再试。', en: 'Service temporarily unavailable, try again later.' }
} satisfies Record<string, Record<Lang, string>>

export type MessageKey = keyof typeof CATALOGUE

export function isMessageKey(key: string): key is MessageKey {
  return Object.hasOwn(CATALOGUE, key)
}

export function message(key: MessageKey, lang: Lang, params: Record<string, unknown> = {}): string {
  return CATALOGUE[key][lang].replace(/\{(\w+)\}/g, (_, name: string) => String(params[name] ?? ''))
}

/** `Accept-Language: en…` (as the first preference) gives English; anything else the default Chinese. */
export function negotiateLanguage(header: string | undefined): Lang {
  if (!header) return 'zh'
  const first = header.split(',')[0]?.trim().toLowerCase() ?? ''
  return first.startsWith('en') ? 'en' : 'zh'
}
