/** The password rules of `jupyter_backendai.core.passwords`, to show while a password is typed. */

export interface IPasswordRule {
  label: string;
  ok: (password: string) => boolean;
}

export const PASSWORD_RULES: IPasswordRule[] = [
  { label: 'at least 8 characters', ok: p => Array.from(p).length >= 8 },
  { label: 'a letter', ok: p => /\p{L}/u.test(p) },
  { label: 'a digit', ok: p => /\p{Nd}/u.test(p) },
  {
    label: 'a special character (not a space)',
    ok: p => /[^\p{L}\p{Nd}\s\p{C}]/u.test(p)
  }
];
