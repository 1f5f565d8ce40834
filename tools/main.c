/* tools/main.c — the ringlet (and inlets-pro) executable. */
#include "tools/cli.h"

int main(int argc, char **argv)
{
	return cli_main(argc, argv);
}
