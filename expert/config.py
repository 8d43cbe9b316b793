"""``ExpertConfig``: every threshold of the expert driver, with its unit.

Distances are metres, speeds m/s, accelerations m/s^2, times seconds, angles degrees. Route
distances are measured along the route from the ego centre's projection onto it, as
``Scene.route[i].distance``; stop-line distances from the front bumper, as in the Scene.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ExpertConfig:
    """Thresholds of ``ExpertDriver`` (Hydra-instantiable: every field has a default)."""

    # ------------------------------------------------------------------ lateral
    # the arc driven: route curvature ahead + feedback on heading / lateral error (expert/lateral.py)
    lateral_omega: float = 1.5  # rad/s, natural frequency of the error dynamics
    lateral_damping: float = 0.9  # damping ratio of the error dynamics
    lateral_min_speed: float = 2.0  # m/s, feedback gains are computed at no less than this speed
    preview_time: float = 0.1  # s, route curvature is read this far ahead (covers the steering lag) ...
    preview_min: float = 1.5  # m ... at least this far (turning into a tight U-turn a little early)
    steer_curvature_window: float = 2.0  # m, arc over which that curvature is measured
    recover_offset: float = 1.5  # m off the route, or ...
    recover_angle: float = 45.0  # deg off the route's heading: steer by pure pursuit to get back

    # ------------------------------------------------------------------ free driving
    cruise_factor: float = 1.0  # x the lane's speed limit when nothing is in the way
    max_speed: float = 13.9  # m/s, never plan faster (SpeedLevels.max_move)
    lateral_accel: float = 4.5  # m/s^2 allowed in curves: v <= sqrt(lateral_accel / curvature) (SUMO: 5.5)
    min_curve_speed: float = 2.0  # m/s, the curve limit never goes below this (dead-end U-turns: R ~ 2 m)
    curvature_window: float = 5.0  # m, heading change is measured over this arc (the turn, not its kinks)
    curve_horizon: float = 45.0  # m of route checked for curves
    junction_speed: float = 12.0  # m/s inside junctions (even straight through)
    plan_decel: float = 3.5  # m/s^2, deceleration planned towards a lower speed ahead (curves, junctions)

    # ------------------------------------------------------------------ IDM-style following / stopping
    # The target speed behind an obstacle is IDM's equilibrium: the speed v at which the IDM
    # desired gap s0 + v T + v (v - v_lead) / (2 sqrt(a b)) equals the actual gap.
    idm_accel: float = 3.0  # m/s^2, IDM a
    idm_decel: float = 3.0  # m/s^2, IDM b (comfortable deceleration)
    follow_s0: float = 3.5  # m, standstill bumper-to-bumper gap behind a vehicle
    follow_time_gap: float = 0.9  # s, IDM T behind a moving vehicle
    pedestrian_s0: float = 4.0  # m, standstill gap before a pedestrian in the path
    static_s0: float = 2.5  # m, standstill gap before a static obstacle
    path_margin: float = 0.3  # m beyond the two half-widths: a vehicle or prop this close to the route is in the path
    pedestrian_path_margin: float = 0.25  # m, the same for a pedestrian (one at the kerb is not in the way)
    nudge_clearance: float = 0.45  # m of side room wanted passing a standing walker or prop ...
    max_nudge: float = 0.45  # m ... by moving over within the lane at most this far
    nudge_horizon: float = 20.0  # m along the route where such actors are looked for
    path_horizon: float = 60.0  # m of route searched for actors in the path
    aligned_angle: float = 50.0  # deg, an actor heading within this of the route is followed (not crossing)

    # ------------------------------------------------------------------ lights and stop signs
    light_s0: float = 1.0  # m, stop this far before a red light's stop line (front bumper)
    light_time_gap: float = 0.0  # s, IDM T towards a stop line
    yellow_decel: float = 3.5  # m/s^2, stop for yellow only if this deceleration suffices ...
    braking_accel: float = 1.0  # m/s^2 ... or if already braking harder than this (and red_max_decel suffices)
    red_max_decel: float = 7.0  # m/s^2, red with a stop needing more than this: too late, go through
    hold_past_line_speed: float = 2.0  # m/s, red with the front past the line: below this hold still
    stop_sign_s0: float = 1.0  # m, stop this far before a stop sign's line

    # ------------------------------------------------------------------ forecast (collision check)
    forecast_dt: float = 0.1  # s, time step of the forecasts
    forecast_horizon: float = 2.0  # s, on open road
    junction_horizon: float = 4.0  # s, for vehicles when a junction is within reach
    junction_reach: float = 30.0  # m, a junction starting within this much route counts as "within reach"
    forecast_radius: float = 50.0  # m, actors farther than this are not forecast
    proceed_accel: float = 2.5  # m/s^2, the ego's forecast accelerates like this towards its target
    ego_length_margin: float = 0.6  # m added to the ego's half-length in the forecast ...
    ego_length_margin_per_speed: float = 0.1  # s, ... plus this x the forecast speed
    ego_width_margin: float = 0.12  # m added to the ego's half-width in the forecast ...
    ego_width_margin_per_speed: float = 0.01  # s ... plus this x the forecast speed
    standing_margin: float = 0.1  # m, the ego's margin (front and sides) against standing vehicles and props
    # (0.25 deadlocked the ego in junctions beside cars that waited for it; 0.1 measured +0.4 / +1.1 DS)
    vehicle_width_margin: float = 0.15  # m added to the half-width of a moving vehicle (none standing)
    vehicle_time_margin: float = 0.5  # s: a vehicle's box is stretched by speed x this, both ways
    pedestrian_margin: float = 0.3  # m added to a pedestrian's half-length (along its walk) ...
    pedestrian_side_margin: float = 0.1  # m ... and half-width: walkers beside the road pass close
    pedestrian_time_margin: float = 0.6  # s, like vehicle_time_margin for pedestrians
    pedestrian_standing_speed: float = 0.2  # m/s, slower walkers get no pedestrian_margin
    pedestrian_horizon: float = 3.0  # s, pedestrians are forecast this far
    conflict_s0: float = 1.5  # m, stop this far before the forecast conflict position ...
    junction_wait_s0: float = 0.5  # m ... or, for a conflict in the junction ahead, this far before its entry
    junction_hold: bool = True  # inside a junction, a moving car's forecast conflict stops the ego at once
    rear_ignore_angle: float = 60.0  # deg, vehicles behind the ego heading within this of it are ignored
    walker_along_angle: float = 45.0  # deg, walkers beside (not ahead of) the ego heading within this of it too
    trail_length: float = 40.0  # m of the route already driven where vehicles count as followers ...
    trail_width: float = 1.6  # m ... when this close to it (and heading along it): never yielded to
    oncoming_angle: float = 150.0  # deg, vehicles heading at least this far from the ego are oncoming
    start_guard_speed: float = 0.5  # m/s: slower than this, the ego does not start off while a moving
    start_guard_reach: float = 4.0  # m ... vehicle is within start_guard_margin of its box stretched this far
    start_guard_margin: float = 0.6  # m    forward (see hazards.start_guard_cap)
    contact_speed: float = 0.3  # m/s: slower than this, a walker within contact_margin of the box ...
    contact_margin: float = 0.15  # m ... keeps the ego standing (see hazards.contact_cap) ...
    vehicle_contact_margin: float = 0.05  # m ... as does a car this close
    brake_decel: float = 6.0  # m/s^2, the "yield" forecast brakes like this (at most, to stop in time)

    # ------------------------------------------------------------------ misc
    wheelbase: float = 2.9  # m, of the ego's bicycle model in the forecast
    vehicle_wheelbase_ratio: float = 0.6  # wheelbase = this x vehicle length (bicycle model of others)
    max_steer_deg: float = 70.0  # deg, front-wheel angle at full steer (forecast)
