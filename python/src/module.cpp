// The `biolm` Python module's compiled core (biolm._core): a federation site of libbiolm with
// its exchanged tensors as numpy arrays. python/biolm/__init__.py re-exports it; docs/federated.md
// ("Python") documents it. Tensors cross as copies (float32 numpy arrays, C order).
//
// The module links libbiolm, which links the LibTorch it was built with (Debian's 1.13 here):
// importing a pip `torch` (another LibTorch) into the same process is not supported.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <torch/torch.h>

#include "biolm/core/config.h"
#include "biolm/core/error.h"
#include "biolm/core/log.h"
#include "biolm/core/version.h"
#include "biolm/federated/site.h"

namespace py = pybind11;
using namespace biolm;

namespace {

using Arrays = std::map<std::string, py::array_t<float>>;

Arrays to_arrays(const federated::TensorMap& tensors) {
  Arrays out;
  for (const auto& [name, t] : tensors) {
    const auto c = t.detach().to(torch::kCPU, torch::kFloat32).contiguous();
    std::vector<py::ssize_t> shape(c.sizes().begin(), c.sizes().end());
    py::array_t<float> a(shape);
    std::memcpy(a.mutable_data(), c.data_ptr<float>(), static_cast<size_t>(c.numel()) * sizeof(float));
    out.emplace(name, std::move(a));
  }
  return out;
}

federated::TensorMap to_tensors(const std::map<std::string, py::array_t<float, py::array::c_style | py::array::forcecast>>& arrays) {
  federated::TensorMap out;
  for (const auto& [name, a] : arrays) {
    std::vector<int64_t> shape(a.shape(), a.shape() + a.ndim());
    out[name] = torch::from_blob(const_cast<float*>(a.data()), shape, torch::kFloat32).clone();
  }
  return out;
}

/// A site built from a federate config (the same YAML `biolm federate` reads).
class PySite {
 public:
  PySite(const std::string& config, const std::string& site, const std::vector<std::string>& overrides) {
    auto tree = core::load_config_file(config);
    core::apply_overrides(tree, overrides);
    spec_ = federated::federate_spec_from_json(tree);
    federated::prepare_shared(spec_);
    int64_t index = -1;
    for (size_t i = 0; i < spec_.sites.size(); ++i) {
      if (spec_.sites[i].name == site) index = static_cast<int64_t>(i);
    }
    if (site != "server" && index < 0) throw ConfigError("sites", "no site named " + site + " in " + config);
    trainer_ = std::make_unique<federated::LocalTrainer>(spec_, index);
  }
  Arrays get_parameters() const { return to_arrays(trainer_->exchanged()); }
  std::vector<std::string> parameter_names() const {
    std::vector<std::string> names;
    for (const auto& [name, t] : trainer_->exchanged()) names.push_back(name);
    return names;
  }
  void set_parameters(const std::map<std::string, py::array_t<float, py::array::c_style | py::array::forcecast>>& arrays) {
    trainer_->set_exchanged(to_tensors(arrays));
  }
  py::dict train(int64_t round, std::optional<int64_t> steps, std::optional<double> proximal_mu) {
    federated::Update u;
    {
      py::gil_scoped_release release;
      u = trainer_->train(round, trainer_->exchanged(), steps, proximal_mu);
    }
    py::dict d;
    d["n_examples"] = u.n_examples;
    d["train_loss"] = u.train_loss;
    d["steps"] = u.steps;
    // DP-SGD at the site: epsilon spent over all its rounds so far, and what it was computed from.
    if (!u.privacy.is_null()) {
      py::dict p;
      for (auto it = u.privacy.begin(); it != u.privacy.end(); ++it) {
        if (it.value().is_number_integer()) p[it.key().c_str()] = it.value().get<int64_t>();
        else if (it.value().is_number()) p[it.key().c_str()] = it.value().get<double>();
        else if (it.value().is_string()) p[it.key().c_str()] = it.value().get<std::string>();
        else p[it.key().c_str()] = it.value().dump();
      }
      d["privacy"] = p;
    }
    return d;
  }
  py::dict evaluate(std::optional<std::string> path, int64_t n_bootstrap) const {
    const auto j = trainer_->evaluate(path.value_or(spec_.dev_path), n_bootstrap);
    py::dict d;
    for (auto it = j.begin(); it != j.end(); ++it) d[py::str(it.key())] = tasks::metric_value(it.value());
    return d;
  }
  int64_t n_examples() const { return trainer_->n_examples(); }
  std::string name() const { return trainer_->name(); }
  std::vector<std::string> site_names() const {
    std::vector<std::string> out;
    for (const auto& s : spec_.sites) out.push_back(s.name);
    return out;
  }
  py::dict federation() const {
    const auto& f = spec_.federation;
    py::dict d;
    d["rounds"] = f.rounds;
    d["fraction"] = f.fraction;
    d["min_clients"] = f.min_clients;
    d["algorithm"] = federated::to_string(f.algorithm);
    d["mu"] = f.mu;
    d["exchange"] = federated::to_string(f.exchange);
    d["seed"] = spec_.seed;
    return d;
  }

 private:
  federated::FederateSpec spec_;
  std::unique_ptr<federated::LocalTrainer> trainer_;
};

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "libbiolm: federation sites (biolm.Site) with numpy parameters";
  // pybind11 tries translators newest first: the base class goes first so subclasses win.
  py::register_exception<Error>(m, "Error", PyExc_RuntimeError);
  py::register_exception<ConfigError>(m, "ConfigError", PyExc_ValueError);
  py::register_exception<DataError>(m, "DataError", PyExc_ValueError);
  py::register_exception<CheckpointError>(m, "CheckpointError", PyExc_ValueError);
  m.def("version", [] { return build_info().dump(); }, "libbiolm, LibTorch and compiler versions (JSON text)");
  m.def("set_log_level", [](const std::string& level) { log::set_level(log::parse_level(level)); },
        py::arg("level"), "trace|debug|info|warn|error|off");
  py::class_<PySite>(m, "Site", R"(One site of a federation, built from a `biolm federate` config.

Site(config, site, overrides=[]): `site` names an entry of the config's `sites` list
("server" builds the server's copy: no training data, evaluate() only). Every site of one
config starts from the same weights. The exchanged tensors (federation.exchange: the trainable
adapters and heads, or every parameter) come and go as {name: float32 numpy array}.)")
      .def(py::init<const std::string&, const std::string&, const std::vector<std::string>&>(), py::arg("config"),
           py::arg("site"), py::arg("overrides") = std::vector<std::string>{})
      .def("get_parameters", &PySite::get_parameters, "the exchanged tensors, {name: numpy array} (copies)")
      .def("parameter_names", &PySite::parameter_names, "names of the exchanged tensors, sorted")
      .def("set_parameters", &PySite::set_parameters, py::arg("parameters"),
           "loads {name: array}: exactly the exchanged names and shapes (CheckpointError otherwise)")
      .def("train", &PySite::train, py::arg("round"), py::arg("steps") = std::nullopt,
           py::arg("proximal_mu") = std::nullopt,
           "local training of round `round` (1-based) from the current parameters: federation.local_steps "
           "(or `steps`), FedProx when proximal_mu (or federation.mu) > 0; returns {n_examples, train_loss, steps}")
      .def("evaluate", &PySite::evaluate, py::arg("path") = std::nullopt, py::arg("bootstrap") = 0,
           "task metrics of the current model on `path` (default data.dev): {metric: value}")
      .def_property_readonly("n_examples", &PySite::n_examples, "training examples (the FedAvg weight)")
      .def_property_readonly("name", &PySite::name)
      .def_property_readonly("site_names", &PySite::site_names, "every site of the config, in order")
      .def_property_readonly("federation", &PySite::federation, "the config's federation settings");
}
