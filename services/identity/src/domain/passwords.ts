import bcrypt from 'bcrypt'

/** bcrypt hashing; a dummy hash lets a login for an unknown user take as long as one for a known user. */
export class Passwords {
  private dummy: Promise<string>

  constructor(private readonly cost: number) {
    this.dummy = bcrypt.hash('roster-dummy-password', cost)
  }

  hash(password: string): Promise<string> {
    return bcrypt.hash(password, this.cost)
  }

  async verify(password: string, hash: string | null): Promise<boolean> {
    if (hash === null) {
      await bcrypt.compare(password, await this.dummy)
      return false
    }
    return bcrypt.compare(password, hash)
  }
}
