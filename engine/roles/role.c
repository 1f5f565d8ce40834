/* engine/roles/role.c — the roles' registration with the loop. */
#include "engine/roles/internal.h"

void role_init(void)
{
	server_init();
	client_init();
	dial_init();
	names_init();
}
