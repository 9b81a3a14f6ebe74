import type { EntityManager } from '@mikro-orm/postgresql'
import { sql, transactional, type ServiceApp } from '@roster/service-kit'
import { createOccupations, neverHeldOccupations } from '../repositories/occupations.js'
import { occupationFact } from './occupations.js'

/**
 * The occupations a new hospital system starts with: the health professionals of GB/T 6565-2015
 * (category 2-05) and the staff around them, in this order, so ids 1–40 mean the same on every new
 * system (the seed document's own registration example uses occupation 34, 助产士). Admins rename,
 * delete and add occupations as they like afterwards.
 */
export const OCCUPATION_CATALOGUE = [
  '内科医师',
  '外科医师',
  '儿科医师',
  '妇产科医师',
  '眼科医师',
  '耳鼻咽喉科医师',
  '口腔科医师',
  '皮肤科医师',
  '精神科医师',
  '传染病科医师',
  '急诊科医师',
  '重症医学科医师',
  '康复医学科医师',
  '麻醉科医师',
  '病理科医师',
  '医学影像科医师',
  '核医学科医师',
  '全科医师',
  '中医内科医师',
  '中医外科医师',
  '针灸推拿医师',
  '中西医结合医师',
  '公共卫生医师',
  '西药药师',
  '中药药师',
  '临床检验技师',
  '放射影像技师',
  '病理技师',
  '康复治疗师',
  '临床营养师',
  '心理治疗师',
  '输血技师',
  '注册护士',
  '助产士',
  '专科护士',
  '护理员',
  '医学工程技术员',
  '卫生信息管理员',
  '医院行政管理人员',
  '其他卫生专业技术人员'
] as const

/**
 * Fills the catalogue into a directory that has never held an occupation (its id sequence was never
 * used), once: replicas starting together take an advisory lock, and a directory whose occupations were
 * all deleted later is not refilled. Each row goes out as `directory.occupation.created` like any other.
 */
export async function seedOccupationCatalogue(app: ServiceApp): Promise<number> {
  return transactional(app.orm.em.fork() as EntityManager, async (t) => {
    await sql(t, "select pg_advisory_xact_lock(hashtext(current_schema() || '.occupation_catalogue'))")
    if (!(await neverHeldOccupations(t))) return 0
    const rows = await createOccupations(t, OCCUPATION_CATALOGUE)
    for (const row of rows) await app.outbox.emit(t, 'directory.occupation.created', occupationFact(row))
    return rows.length
  })
}
