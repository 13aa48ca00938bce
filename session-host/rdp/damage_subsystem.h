#pragma once
// appvirt's own shadow subsystem for libfreerdp-shadow2 (selected with
// shadow_subsystem_set_entry(damage_subsystem_entry) instead of the built-in "X11" one).
//
// The built-in subsystem grabs the whole root window 16 times a second and diffs it. This one
// sleeps until the X server reports damage (XDamage, NonEmpty level), then grabs only the
// damaged rectangles (coalesced, damage_region.h) at most once per frame interval (≤ 30 fps),
// copies them into the shadow surface and publishes that region to the clients. An idle screen
// costs no wakeup at all. Input goes in through XTEST (x_test_input.h), the cursor image
// through XFixes. Monitor enumeration: one monitor, the root window. docs/session-host.md.
#include <freerdp/server/shadow.h>

namespace appvirt::rdp {

int damage_subsystem_entry(RDP_SHADOW_ENTRY_POINTS* entry_points);

}  // namespace appvirt::rdp
