"""First-stage estimation of the transitions, for any model, and the transition log-likelihood.

Which first stage runs depends on what the model declares:

* **A transition family with its own data** (``model.hooks.transition_family`` overriding
  :meth:`~ddc.hooks.TransitionFamily.statistics`, e.g. Rust's bus with
  :class:`ddc.transition_families.IncrementTransitions`): the family estimates itself from its
  additive statistics; NFXP's full-information stage and the out-of-core statistics call the
  same family.
* **Transition parameters** :math:`\\psi` (a callable transition function): maximum likelihood
  over the observed transitions,

  .. math:: \\ell_t(\\psi) = \\sum_{s, a, s'} n(s, a, s') \\log P(s' \\mid s, a; \\psi).

  Parameters the family declares to be probabilities of one distribution
  (:meth:`~ddc.hooks.TransitionFamily.simplex_groups`, last = 1 - sum) are optimized in a
  softmax parametrisation :math:`p_k = e^{z_k} / \\sum_l e^{z_l}` (the largest starting
  probability's logit fixed at 0), which cannot leave the simplex; a zero in the default
  transitions is moved into the interior before starting. The optimum is checked, not taken
  from the optimizer's flag: the Newton decrement :math:`g' (-H)^{-1} g` (the squared distance
  to the maximum in standard-error units) must be below ``tol`` and :math:`-H` positive
  definite, else :class:`ddc.ConvergenceError`. Derivatives are central differences in the
  unconstrained coordinates (the transition function is the user's; no analytic derivative
  exists in general); the covariance is :math:`J (-H_z)^{-1} J'` with :math:`J = \\partial
  \\psi / \\partial z`. Probabilities that end below :data:`BOUNDARY` (an outcome never
  observed) are set to zero and held there (zero variance; listed in the notes).
* **Fixed factored transitions** (no transition parameters): nonparametric cell frequencies.
  For each factor :math:`F_j(x' \\mid g)` (``g``: its conditioning variables and the action),

  .. math::

      \\hat F_j(x' \\mid g) = \\frac{C_j[g, x']}{\\sum_{y} C_j[g, y]},
      \\qquad \\widehat{\\mathrm{Var}}(\\hat F_j(\\cdot \\mid g)) =
      \\frac{\\mathrm{diag}(\\hat F) - \\hat F \\hat F'}{\\sum_y C_j[g, y]},

  with :math:`C_j` the observed counts. Structural zeros stay zero (an observed transition into
  one is refused in the data preparation, see :class:`ddc.panel.ImpossibleTransitionError`);
  rows with a single nonzero (deterministic) are not estimated; rows never visited keep the
  model's value and are listed (``unvisited="model"``) or raise (``unvisited="raise"``); rows no
  feasible action can reach are ignored. The estimators then use a copy of the model with the
  estimated tables (:attr:`TransitionEstimate.model`); standard errors of the utility
  parameters treat those tables as known (listed in the results' notes).
* ``TransitionOptions(known=True)`` (or ``transitions="known"`` on an estimator): the model's
  transitions are taken as known, nothing is estimated, and the transition log-likelihood is
  reported at them.

The package's modules: :mod:`~estimators.first_stage.estimate` holds what the first stage is
asked and returns (:class:`TransitionOptions`, :class:`TransitionEstimate`);
:mod:`~estimators.first_stage.entry` picks the first stage (:func:`estimate_transitions`);
:mod:`~estimators.first_stage.transition_likelihood` the transition probabilities and
log-likelihood; :mod:`~estimators.first_stage.impossible` the check for impossible transitions;
:mod:`~estimators.first_stage.cells` the nonparametric cell frequencies and unvisited rows;
:mod:`~estimators.first_stage.family` a declared family's own estimate;
:mod:`~estimators.first_stage.parametric` the maximum likelihood of transition parameters;
:mod:`~estimators.first_stage.draws` draws from the estimate's sampling distribution;
:mod:`~estimators.first_stage.cell_view` the first stage seen as parameters;
:mod:`~estimators.first_stage.covariance_correction` the Murphy-Topel correction and
:mod:`~estimators.first_stage.reestimation` the delta method over re-estimation.
"""

from estimators.first_stage.cell_view import CellView as CellView
from estimators.first_stage.cell_view import _cell_parts as _cell_parts
from estimators.first_stage.cell_view import _cell_view as _cell_view
from estimators.first_stage.cell_view import first_stage_view
from estimators.first_stage.cells import _cell_layout as _cell_layout
from estimators.first_stage.cells import _given_rows as _given_rows
from estimators.first_stage.cells import _nonparametric as _nonparametric
from estimators.first_stage.cells import _reachable_rows as _reachable_rows
from estimators.first_stage.cells import _row_label as _row_label
from estimators.first_stage.cells import factor_counts
from estimators.first_stage.covariance_correction import MAX_CORRECTED as MAX_CORRECTED
from estimators.first_stage.covariance_correction import _row_kinds as _row_kinds
from estimators.first_stage.covariance_correction import _RowKinds as _RowKinds
from estimators.first_stage.covariance_correction import (
    first_stage_covariances,
    first_stage_cross_derivative,
    murphy_topel,
)
from estimators.first_stage.draws import FirstStageDraws, draw_first_stage
from estimators.first_stage.entry import _known as _known
from estimators.first_stage.entry import estimate_transitions
from estimators.first_stage.estimate import _NO_UNVISITED as _NO_UNVISITED
from estimators.first_stage.estimate import (
    BOUNDARY,
    TransitionEstimate,
    TransitionOptions,
    transition_model,
)
from estimators.first_stage.estimate import FD_MARGIN as FD_MARGIN
from estimators.first_stage.estimate import INTERIOR_MIX as INTERIOR_MIX
from estimators.first_stage.family import _from_family as _from_family
from estimators.first_stage.family import sum_zero_directions
from estimators.first_stage.impossible import check_possible, support_params
from estimators.first_stage.parametric import _Coordinates as _Coordinates
from estimators.first_stage.parametric import _parametric as _parametric
from estimators.first_stage.parametric import _triple_log_probs as _triple_log_probs
from estimators.first_stage.reestimation import _reestimated_jacobian as _reestimated_jacobian
from estimators.first_stage.reestimation import reestimation_covariances as reestimation_covariances
from estimators.first_stage.transition_likelihood import _base_params as _base_params
from estimators.first_stage.transition_likelihood import _family as _family
from estimators.first_stage.transition_likelihood import _family_frame as _family_frame
from estimators.first_stage.transition_likelihood import _own_data as _own_data
from estimators.first_stage.transition_likelihood import _simplex as _simplex
from estimators.first_stage.transition_likelihood import _transition_counts as _transition_counts
from estimators.first_stage.transition_likelihood import family_statistics as family_statistics
from estimators.first_stage.transition_likelihood import transition_log_probs, transition_loglik

__all__ = ["BOUNDARY", "FirstStageDraws", "TransitionEstimate", "TransitionOptions",
           "check_possible", "draw_first_stage", "estimate_transitions", "factor_counts",
           "first_stage_covariances", "first_stage_cross_derivative", "first_stage_view",
           "murphy_topel", "sum_zero_directions", "support_params", "transition_log_probs",
           "transition_loglik", "transition_model"]
