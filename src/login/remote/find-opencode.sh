# find_opencode [CONFIGURED]: sets $oc to the opencode binary: the configured path, else PATH, else the
# usual install locations (a non-login shell often lacks the PATH entries of ~/.profile or nvm).
find_opencode() {
  oc=$1
  if [ -z "$oc" ]; then
    oc=$(command -v opencode 2>/dev/null) || oc=
  fi
  if [ -z "$oc" ]; then
    for candidate in "$HOME/.opencode/bin/opencode" "$HOME/.local/bin/opencode" "$HOME/.npm-global/bin/opencode" \
      "$HOME/.bun/bin/opencode" /usr/local/bin/opencode /opt/homebrew/bin/opencode; do
      if [ -x "$candidate" ]; then oc=$candidate; break; fi
    done
  fi
}
