# Login shells on a Sandlot node: a prompt with the node's name and address, the current directory told to the
# terminal, docker completion, the motd.
if [ -n "${BASH_VERSION:-}" ] && [ -n "${PS1:-}" ]; then
	SANDLOT_IP=${SANDLOT_IP:-$(hostname -i 2>/dev/null | cut -d' ' -f1)}
	PS1='\[\e[1;36m\][\h \[\e[0;36m\]${SANDLOT_IP}\[\e[1;36m\]]\[\e[0m\] \w \$ '
	# Tell the terminal the current directory (OSC 7), so that files dropped on it land there.
	PROMPT_COMMAND='printf "\e]7;file://%s%s\a" "$HOSTNAME" "$PWD"'
	[ -r /usr/share/bash-completion/bash_completion ] && . /usr/share/bash-completion/bash_completion
	[ -r /etc/motd ] && cat /etc/motd
fi
