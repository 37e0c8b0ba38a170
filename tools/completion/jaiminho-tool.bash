# bash completion for jaiminho-tool. Installed by `cmake --install` to
# share/bash-completion/completions/jaiminho-tool; or: source this file.
#
# The commands and their options are read from the tool's own --help (once
# per command and shell), so the completion follows the installed version.
# Completes: commands, options, database directories, --state values, the
# sink schemes of relay --sink, and the streams of the database on the line
# for --stream (for inbox: the producers' streams and, for --db-id, the
# producer database ids its inbox recorded).

_jaiminho_tool_help() {  # TOOL [COMMAND]: the help text, cached per shell
  local key="${1}|${2:-}"
  if [[ -z "${_jaiminho_tool_cache[$key]+set}" ]]; then
    _jaiminho_tool_cache[$key]="$("$1" ${2:+"$2"} --help 2>/dev/null)"
  fi
  printf '%s\n' "${_jaiminho_tool_cache[$key]}"
}

_jaiminho_tool() {
  local cur prev tool="${COMP_WORDS[0]}" command="" db="" i w
  cur="${COMP_WORDS[COMP_CWORD]}"
  prev="${COMP_WORDS[COMP_CWORD - 1]}"
  declare -gA _jaiminho_tool_cache 2>/dev/null || true
  # The command: the first word after the tool that is not an option; the
  # database: the first word after it that is not an option or its value.
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="${COMP_WORDS[i]}"
    if [[ -z "$command" ]]; then
      [[ "$w" != -* ]] && command="$w"
    elif [[ -z "$db" && "$w" != -* && "${COMP_WORDS[i - 1]}" != --* ]]; then
      db="$w"
    fi
  done

  if [[ -z "$command" ]]; then
    if [[ "$cur" == -* ]]; then
      mapfile -t COMPREPLY < <(compgen -W "--help --version" -- "$cur")
    else
      local commands
      commands="$(_jaiminho_tool_help "$tool" | awk '/^Subcommands:/ { on = 1; next } on && /^$/ { exit } on { print $1 }')"
      mapfile -t COMPREPLY < <(compgen -W "$commands" -- "$cur")
    fi
    return 0
  fi

  case "$prev" in
    --state)
      mapfile -t COMPREPLY < <(compgen -W "pending retrying sent parked corrupt" -- "$cur")
      return 0
      ;;
    --sink)
      mapfile -t COMPREPLY < <(compgen -W "stdout exec: mqtt:// mqtts:// kafka://" -- "$cur")
      compopt -o nospace 2>/dev/null
      return 0
      ;;
    --stream)
      if [[ -n "$db" && -d "$db" ]]; then
        local names source=streams
        [[ "$command" == inbox ]] && source=inbox # the producers' streams the inbox recorded
        names="$("$tool" "$source" "$db" --json 2>/dev/null | sed -n 's/.*"stream": *"\([^"]*\)".*/\1/p')"
        mapfile -t COMPREPLY < <(compgen -W "$names" -- "$cur")
      fi
      return 0
      ;;
    --db-id)
      if [[ -n "$db" && -d "$db" ]]; then
        local ids
        ids="$("$tool" inbox "$db" --json 2>/dev/null | sed -n 's/.*"db_id": *"\([0-9a-f]*\)".*/\1/p' | sort -u)"
        mapfile -t COMPREPLY < <(compgen -W "$ids" -- "$cur")
      fi
      return 0
      ;;
    --keys | --output)
      mapfile -t COMPREPLY < <(compgen -f -- "$cur")
      return 0
      ;;
  esac

  if [[ "$cur" == -* ]]; then
    local options
    options="$(_jaiminho_tool_help "$tool" "$command" | grep -o -- '--[a-z][a-z0-9-]*' | sort -u)"
    mapfile -t COMPREPLY < <(compgen -W "$options" -- "$cur")
  elif [[ -z "$db" ]]; then
    mapfile -t COMPREPLY < <(compgen -d -- "$cur")
  fi
  return 0
}

complete -F _jaiminho_tool jaiminho-tool
